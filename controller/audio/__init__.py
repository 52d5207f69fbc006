"""The far end's audio during a wait: a UDP receiver for FreeSWITCH's `unicast` stream and a classifier
(silence, noise, music, speech). Below the actions, above nothing but the foundation."""
