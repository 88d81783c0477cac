"""Relay invitation and consent: signed links, the consent page's logic, consent evidence."""
