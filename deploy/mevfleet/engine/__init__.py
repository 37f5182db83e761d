"""The pyinfra engine: thin operations that make a host match its plan. One module per concern."""
