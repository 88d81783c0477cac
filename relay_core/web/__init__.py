"""The small always-on service: ATS webhooks, the consent pages and agency events."""
