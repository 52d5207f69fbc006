"""The during-call workflow action: the brain fills the arguments, the HTTP call runs, the result is spoken."""
from __future__ import annotations

from typing import Any

from controller.templating import TemplateError, render
from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext
from controller.workflow.run import run_workflow


@register
class CallWorkflowAction(Action):
    """`run_workflow` (the one HTTP implementation of every moment) with the brain's arguments as variables.

    The arguments are validated against the configured JSON schema before this runs; the kept response fields
    become call variables; `say_result` (a template over the variables) is what the agent says on success.
    `say_while_running` is queued on FreeSWITCH before the request is sent, so the caller hears it meanwhile
    instead of silence (a slow CRM can take the action's whole `timeout_s`).
    """

    type = "workflow"

    def schema(self) -> dict[str, Any]:
        return self.config.arguments or {"type": "object", "properties": {}, "additionalProperties": False}

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        variables = {**ctx.variables, "arguments": arguments, **arguments}
        if self.config.say_while_running:
            try:
                ctx.say(render(self.config.say_while_running, variables))
            except TemplateError as exc:
                ctx.log.error("workflow %s: say_while_running template failed: %s", self.name, exc)
        result = run_workflow(self.config, variables, uuid=ctx.uuid, clock=ctx.clock)
        if not result.ok:
            return ActionOutcome("failed", progress=False,
                                 detail={"status": result.status, "error": result.error})
        ctx.variables.update(result.variables)
        say = ""
        if self.config.say_result:
            try:
                say = render(self.config.say_result, {**variables, **result.variables})
            except TemplateError as exc:
                ctx.log.error("workflow %s: say_result template failed: %s", self.name, exc)
        return ActionOutcome("ok", say=say, detail={"status": result.status, "kept": result.variables,
                                                    "elapsed_ms": round(result.elapsed_ms, 1)})
