"""The explorer: an interactive page over a served model's REST API (`tfode-explore`)."""
