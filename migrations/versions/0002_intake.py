"""Intake: seed the category catalogue; an index for the case list's keyset pagination.

The seed rows are written out here, not imported from ``cases/catalogue.py``: a migration
must do the same thing forever, whatever the code later says.

Codes are the event codes of GB/T 30428.2 / CJ/T 315 digital city management (2-digit major
class + 2-digit minor class) that matter for the reference city, plus two city extension
codes (minor class 99, the standard's own extension mechanism):

* 0599 社会生活噪音扰民 (social-life noise: square dancing, loudspeakers, neighbours'
  renovation at night...). The standard has no minor class for it; cities file it under
  0508 or an extension code. Tengzhou's top complaint type (1,200+ a year) deserves its own
  code so that statistics separate it from shops' commercial noise (0508).
* 0199 垃圾分类 (garbage sorting): a current campaign topic without a standard code.

Duplicate radius / window overrides (NULL = settings ``duplicate_radius_m`` 50 m /
``duplicate_window_days`` 7 days). Only open cases are ever candidates, so the window
mainly bounds how long an unresolved matter keeps attracting repeat reports:

* noise (0508, 0599) 100 m / 1 day: heard across a block, so neighbours in different
  buildings report one source; an episode is one evening, and a report the next week is a
  new episode to handle, not a repeat.
* construction noise and dust (0301, 0302) 200 m / 7 days: a construction site is large
  and the nuisance lasts as long as the works.
* illegal construction (0101) 30 m / 30 days: a structure is a fixed, precise thing (the
  neighbour's extension is a different case) and stays until demolished (15-20 working
  days in city handbooks).
* fast-moving nuisances (0102 exposed garbage, 0104 road not clean, 0501 hawkers, 0505/0506
  parking, 0510 open-air barbecue) 1 day, with radius 100 m for the moving or diffuse ones
  (hawkers, barbecue smoke, a dirty stretch of road).
* road waterlogging (0406) 200 m / 1 day: one rainstorm floods a stretch of road.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MAJOR = {
    "01": ("市容环境", "City appearance and environment"),
    "02": ("宣传广告", "Advertising"),
    "03": ("施工管理", "Construction management"),
    "04": ("突发事件", "Emergencies"),
    "05": ("街面秩序", "Street order"),
}

# (code, name_zh, name_en, duplicate_radius_m, duplicate_window_days)
CATEGORIES = [
    ("0101", "私搭乱建", "Illegal construction", 30.0, 30),
    ("0102", "暴露垃圾", "Exposed garbage", None, 1),
    ("0103", "积存垃圾渣土", "Accumulated garbage and muck", None, None),
    ("0104", "道路不洁", "Road not clean", 100.0, 1),
    ("0106", "绿地脏乱", "Dirty or untidy green space", None, None),
    ("0199", "垃圾分类", "Garbage sorting (city extension code)", None, None),
    ("0201", "非法小广告", "Illegal small advertisements", None, None),
    ("0301", "施工扰民", "Construction noise", 200.0, 7),
    ("0302", "工地扬尘", "Construction site dust", 200.0, 7),
    ("0304", "施工占道", "Construction occupying the road", 100.0, 7),
    ("0406", "道路积水", "Road waterlogging", 200.0, 1),
    ("0501", "无照经营游商", "Unlicensed street vendors", 100.0, 1),
    ("0504", "店外经营", "Shop encroachment (business outside the shop)", None, None),
    ("0505", "机动车乱停放", "Illegally parked motor vehicles", None, 1),
    ("0506", "非机动车乱停放", "Illegally parked bicycles and e-bikes", None, 1),
    ("0507", "乱堆物料", "Materials piled in public space", None, None),
    ("0508", "商业噪音", "Commercial noise", 100.0, 1),
    ("0510", "露天烧烤", "Open-air barbecue", 100.0, 1),
    ("0599", "社会生活噪音扰民", "Social-life noise (city extension code)", 100.0, 1),
]

DESCRIPTIONS = {
    "0199": "City extension code: garbage sorting at collection points (no standard minor class).",
    "0599": (
        "City extension code: noise from social life (square dancing, loudspeakers, "
        "neighbours, night-time renovation). The national standard has no minor class for "
        "it; commercial noise from shops is 0508."
    ),
}

KEYSET_INDEX = """
CREATE INDEX case_reported_at_id ON "case" (reported_at DESC, id DESC)
"""


def upgrade() -> None:
    rows = [
        {
            "code": code,
            "name_zh": zh,
            "name_en": en,
            "major_zh": MAJOR[code[:2]][0],
            "major_en": MAJOR[code[:2]][1],
            "description": DESCRIPTIONS.get(code),
            "radius": radius,
            "window": window,
        }
        for code, zh, en, radius, window in CATEGORIES
    ]
    op.get_bind().execute(
        sa.text(
            "INSERT INTO category (code, name_zh, name_en, major_zh, major_en, description,"
            " duplicate_radius_m, duplicate_window_days)"
            " VALUES (:code, :name_zh, :name_en, :major_zh, :major_en, :description, :radius, :window)"
            " ON CONFLICT (code) DO NOTHING"
        ),
        rows,
    )
    # Newest-first keyset pagination of the case list walks this index.
    op.execute(KEYSET_INDEX)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_reported_at_id")
    # Only rows no case refers to can go; a catalogue in use stays.
    op.get_bind().execute(
        sa.text(
            'DELETE FROM category c WHERE c.code = ANY(:codes)'
            ' AND NOT EXISTS (SELECT 1 FROM "case" WHERE category_code = c.code)'
        ),
        {"codes": [row[0] for row in CATEGORIES]},
    )
