"""The case ledger: intake, workflow states and transitions, deadlines, indicators."""
