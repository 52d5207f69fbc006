"""Transfer rules: destinations and matching, the bridge outcome, the imported number directory, windows."""
