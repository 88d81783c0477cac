"""The data items an agency may receive, and those it never may.

    DESCRIBABLE        what an agency may list in `fields` (the consent page has words for each)
    PROVENANCE_ITEMS   how the data was obtained (取得の経緯), carried by the APPI Art. 30 manifest
                       of every transfer: the job applied for, the day our selection ended, the
                       day of the consent; personal data like any field, so listed on the consent
                       page and recorded as items
    banned_category    a key the 職業安定法 指針 or APPI Art. 2(3) (要配慮個人情報) keeps from ever
                       leaving, with interviewer notes and scores, even if someone allowlisted it

This module knows no agency and no document: records/agencies.py and records/handoff/payload.py
both build on it.
"""

from __future__ import annotations

import unicodedata

DESCRIBABLE = ("name", "email", "phone", "job_title", "desired_role", "location",
               "start_period", "message")
PROVENANCE_ITEMS = ("job_title", "decision_date", "consent_date")

# Substrings of a normalised key (lower case, letters/digits only) that are never sent.
# Deny by substring on purpose: a false positive costs one field, a false negative is a breach.
BANNED_KEY_PARTS: dict[str, tuple[str, ...]] = {
    "指針: origin and social status": (
        "honseki", "本籍", "domicile", "birthplace", "placeofbirth", "出生地", "出身地",
        "familyorigin", "家柄", "socialstatus", "社会的身分", "race", "人種", "ethnic", "民族",
        "nationality", "国籍", "門地"),
    "指針: family and assets": (
        "familyoccupation", "familymember", "familystructure", "familyincome",
        "familybackground", "householdincome", "家族", "世帯収入", "parentsoccupation",
        "parentoccupation", "両親", "spouse", "配偶者", "asset", "資産", "wealth", "財産",
        "住宅状況", "housing"),
    "指針: appearance": (
        "appearance", "容姿", "容貌", "photo", "写真", "height", "身長", "weight", "体重",
        "bodymeasure", "スリーサイズ"),
    "指針: beliefs, politics, unions": (
        "belief", "religio", "creed", "信条", "思想", "宗教", "信仰", "political", "政党",
        "支持政党", "newspaper", "新聞", "favouritebook", "favoritebook", "愛読書",
        "philosophy", "人生観", "union", "組合", "socialmovement", "社会運動", "学生運動"),
    "要配慮個人情報": (
        "health", "健康", "medical", "病歴", "病気", "disease", "illness", "disab", "障害",
        "criminal", "犯罪", "前科", "conviction", "arrest", "逮捕", "victim", "被害",
        "genetic", "遺伝", "sexualorientation", "性的指向"),
    "interviewer notes and scores": (
        "note", "メモ", "所見", "score", "点数", "評価", "rating", "rank", "evaluat",
        "feedback", "interview", "面接", "assessment", "appraisal", "judg", "判定", "comment",
        "コメント"),
}


def normalise_key(key: str) -> str:
    text = unicodedata.normalize("NFKC", str(key)).lower()
    return "".join(c for c in text if c.isalnum())


def banned_category(key: str) -> str | None:
    """The reason a field may never leave, or None."""
    normal = normalise_key(key)
    for category, parts in BANNED_KEY_PARTS.items():
        if any(part in normal for part in parts):
            return category
    return None
