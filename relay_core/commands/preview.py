"""`career-relay preview`: what a candidate would receive, without sending or recording."""

from __future__ import annotations

from pathlib import Path

from relay_core.config import load_config
from relay_core.cycle.building import case_feedback
from relay_core.errors import ConfigError
from relay_core.rendering.emails import RenderedEmail, Renderer, build_context

PREVIEW_LINK = "/r/PREVIEW-ONLY-NOT-A-REAL-LINK"


def render_preview(config_path: Path, *, case_id: int | None, language: str | None,
                   kind: str) -> RenderedEmail:
    config = load_config(config_path)
    renderer = Renderer(config)
    if case_id is None:
        lang = language or config.company.mail_language
        return renderer.render(kind, lang, renderer.sample_context(kind, lang))
    from relay_core.store import open_store

    case = open_store(config.store_url).case(case_id)
    if case is None:
        raise ConfigError("--case", f"no case {case_id}", "Pick an id from `career-relay status`")
    person = case.person
    if person is None:
        raise ConfigError("--case", f"case {case_id} holds no personal data any more (purged)",
                          "Preview with sample data instead")
    lang = language or case.language
    link = config.relay.public_base_url + PREVIEW_LINK if case.invite else None
    context = build_context(
        config, display_name=person.full_name, last_name=person.last_name,
        first_name=person.first_name, job_title=case.job_title,
        stage=case.stage, invitation_url=link,
        invitation_expires="(preview)" if link else None, language=lang,
        feedback=case_feedback(config, case.source, case.feedback), source=case.source,
        unsubscribe_url=(config.relay.public_base_url + "/u/PREVIEW-ONLY-NOT-A-REAL-LINK"
                         if kind == "invite_only" else None))
    if kind == "confirmation":
        context = {**renderer.sample_context(kind, lang), **context}
    return renderer.render(kind, lang, context)
