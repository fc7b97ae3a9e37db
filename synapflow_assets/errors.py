"""The base of every error the package raises on purpose."""


class SynapFlowError(Exception):
    """An error raised on purpose by synapflow_assets; its message is one line meant for the user."""
