"""Career Relay core: everything between a connector's RejectionEvent and the candidate's inbox."""

__version__ = "0.1.0"
