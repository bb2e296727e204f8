"""Why the address matcher answered as it did, as codes with parameters, said in one place.

An explanation is a list of *reasons*, each a dict ``{"code": CODE, **params}`` (JSON as it
is: the matcher's answers, the stored suggestions and ``case_locate.reasons`` carry it, so
a program reads the code and a page says it in its own language). :func:`explain` renders
a list in Chinese or English from :data:`WHY`, the one vocabulary; the ``why`` text of the
CLI, the API and the history notes is its English rendering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# code -> (Chinese, English) templates, filled with the reason's parameters.
WHY: dict[str, tuple[str, str]] = {
    "nothing": ("地址中没有已知地名", "no known place in the address"),
    "ambiguous": ("{n} 处均符合: {options}", "{n} places fit: {options}"),
    "memory": ("地址记忆: {n} 件已定位案件", "learned from {n} located case{s}"),
    "memory_elsewhere": ("另有 {n} 件在别处", "{n} more elsewhere"),
    "street_only": ("只有路名, 没有门牌号", "a street, no number"),
    "gazetteer_agrees": ("地名库一致", "the gazetteer agrees"),
    "memory_between": ("{street}{lo}号与{hi}号之间, 两者均记忆在本社区",
                       "between No. {lo} and No. {hi} of {street}, both learned in this community"),
    "memory_neighbour": ("{street}{no}号曾在此定位", "No. {no} of {street} was learned here"),
    "memory_similar": ("与已记忆地址 {key} 相似", "like the learned address {key}"),
    "crossing": ("{a}与{b}交叉口", "crossing of {a} and {b}"),
    "doorplate": ("门牌 {name}", "doorplate {name}"),
    "road_number": ("{road}{no}号 (门牌段 {lo}-{hi} 号)", "No. {no} of {road} (numbers {lo}-{hi})"),
    "road": ("位于{road}", "on {road}"),
    "no_range": ("没有包含 {no} 号的门牌段", "no range holds No. {no}"),
    "names_community": ("地址写明社区 {name}", "the address names community {name}"),
    "names_subdistrict": ("只写明街道 {name} ({sub})", "only the subdistrict {name} ({sub}) is named"),
    "community": ("社区 {name}", "community {name}"),
    "subdistrict": ("仅街道 {name}", "subdistrict {name} only"),
    "place": ("{kind} {name}", "{kind} {name}"),
    "tail": ("地址末尾部分", "tail of the address"),
    "typo": ("有一个字不同", "one character differs"),
    "shifted": ("向{bearing}{m:g}米", "{m:g} m towards {deg:g}°"),
}
# A place's kind (gazetteer_entry.kind) in words; English keeps the kind's own name.
KINDS: dict[str, str] = {"compound": "小区", "building": "楼栋", "doorplate": "门牌", "poi": "兴趣点",
                         "landmark": "地标", "post": "岗位", "crossing": "路口", "road": "道路",
                         "community": "社区", "subdistrict": "街道"}
_BEARINGS = {0: "北", 45: "东北", 90: "东", 135: "东南", 180: "南", 225: "西南", 270: "西",
             315: "西北"}
# Reasons said in brackets after the one before them ("compound 幸福小区 (tail of the address)").
_QUALIFIERS = ("memory_elsewhere", "street_only", "tail", "typo", "no_range")


def reason(code: str, /, **params) -> dict:
    """One reason (``code`` must be in :data:`WHY`; no parameter may be called ``code``)."""
    if code not in WHY:
        raise KeyError(f"no address explanation {code!r}")
    return {"code": code, **params}


def _one(r: Mapping, lang: str) -> str:
    code = r.get("code")
    pair = WHY.get(code or "")
    if pair is None:  # an explanation of a later version: say what can be said
        return str(r.get("text") or code or "")
    params = {k: v for k, v in r.items() if k != "code"}
    en = lang == "en"
    if code == "ambiguous":
        params["options"] = "; ".join(
            f"{o.get('community_name') or o.get('community_code') or '?'}"
            f" ({explain(o.get('reasons') or (), lang)})" for o in params.get("options", ()))
    elif code == "memory":
        params["s"] = "s" if params.get("n", 1) != 1 else ""
    elif code == "place" and not en:
        params["kind"] = KINDS.get(str(params.get("kind")), params.get("kind"))
    elif code == "shifted":
        deg = params.get("deg") or 0
        params["bearing"] = _BEARINGS.get(round(float(deg)) % 360, f"{deg:g}°方向")
    try:
        return pair[1 if en else 0].format(**params)
    except (KeyError, IndexError, ValueError):
        return pair[1 if en else 0]


def explain(reasons: Iterable[Mapping] | None, lang: str = "en") -> str:
    """``reasons`` in words (``lang``: ``zh`` or ``en``); a qualifier goes in brackets after
    the reason it qualifies, the others are joined by semicolons."""
    parts: list[str] = []
    for r in reasons or ():
        text = _one(r, lang)
        if r.get("code") in _QUALIFIERS and parts:
            parts[-1] += f" ({text})"
        else:
            parts.append(text)
    return ("; " if lang == "en" else "；").join(parts)
