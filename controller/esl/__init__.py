"""The protocol floor: the event-socket session, frames, listener, inbound client, module checks, values, commands."""
