"""The README's curl walkthrough, run exactly as written against the live services."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import LiveServices

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("<!-- walkthrough:start -->", 1)[1].split("<!-- walkthrough:end -->", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_readme_walkthrough_works_as_written(live_services: LiveServices) -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) >= 6
    # Any HTTP error fails the script: curl gets --fail-with-body, the shell -euo pipefail.
    script = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; echo; }\n'
    script += "\n".join(blocks)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TASKS": live_services.urls["tasks"],
        "WORKERS": live_services.urls["workers"],
        "PAYMENTS": live_services.urls["payments"],
    }
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    out = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    balances = [o for o in out if set(o) >= {"available", "withdrawn"}]
    # two rewards of 0.10 (the second by the overturned appeal) and the 1.00 bonus
    assert balances and balances[-1]["available"] == "1.20"
    requester_balance = next(o for o in out if set(o) >= {"available", "reserved", "spent"})
    assert requester_balance == {
        "kind": "requester",
        "available": "19.52",
        "reserved": "0.48",
        "spent": "0.00",
    }
    assert any(o.get("status") == "granted" for o in out)
    # the hourly project at 18.00 an hour: the measured seconds, paid to the cent
    hourly = next(o for o in out if o.get("pay_model") == "hourly" and o["status"] == "published")
    assert (hourly["hourly_rate"], hourly["money"]["reserved"]) == ("18.00", "10.80")
    ended = next(o for o in out if o.get("ended_reason") == "worker")
    assert 4 <= ended["seconds_worked"] <= 8
    assert ended["activity_events"] == 4  # open, accept, submit, end
    sheet = next(o for o in out if "paid_seconds" in o)
    assert (sheet["status"], sheet["paid_seconds"]) == ("approved", ended["seconds_worked"])
    paid = ended["seconds_worked"] * 1800 // 3600
    assert sheet["paid"] == f"0.{paid:02d}"
    assert sheet["fee"] == f"0.{max(1, (paid * 20 + 50) // 100):02d}"
    assert (sheet["answers_submitted"], sheet["sessions"]) == (1, 1)
    assert balances[0]["available"] == sheet["paid"]  # Bob's, before Alice's
    withdrawal = out[-1]
    assert withdrawal["amount"] == "1.20" and withdrawal["status"] in ("pending", "paid")
    # levels: Alice at level 0, one approved answer of the 50 level 1 asks
    level = next(o for o in out if "next_level" in o)
    assert (level["level"], level["name"]) == (0, "entry")
    texts = [t["text"] for t in level["next_level"]["thresholds"]]
    assert "1 of 50 approved answers" in texts
    # training: graded at once, the expected answer and its explanation shown, passed
    practice = next(o for o in out if "correct" in (o.get("training") or {}))
    feedback = practice["training"]
    assert (practice["status"], feedback["correct"]) == ("approved", True)
    assert feedback["expected_answer"] == {"label": "cat"}
    assert feedback["explanation"] == "Whiskers, pointed ears and a long tail: a kitten."
    assert (feedback["progress"]["status"], feedback["progress"]["granted_value"]) == (
        "passed",
        100,
    )
    # fair review: the rejection appealed, listed to the requester, overturned
    appeals = [o for o in out if "answer_by" in o]
    opened, overturned = appeals[0], appeals[-1]
    assert (opened["status"], opened["message"]) == (
        "open",
        "Look at the snout and ears: it is a dog.",
    )
    listed = next(o for o in out if o.get("items") and "answer_by" in o["items"][0])
    assert [a["id"] for a in listed["items"]] == [opened["id"]]
    assert (overturned["id"], overturned["status"]) == (opened["id"], "overturned")
    assert overturned["reason"] == "You are right, it is a dog."
    mine = [o for o in out if o.get("items") and "answer_by" in o["items"][0]][-1]
    assert [(a["id"], a["status"]) for a in mine["items"]] == [(opened["id"], "overturned")]
