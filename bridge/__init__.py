"""lockbridge: a local bridge from radio-attached smart locks to MQTT."""

__version__ = "0.1.0"
