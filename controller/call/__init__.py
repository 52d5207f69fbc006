"""One call's life: the socket session and its three moments, the conversation, the loop guard, originate."""
