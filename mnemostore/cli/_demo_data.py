"""The script of ``mnemostore demo``: who talks to the assistant, what they say, and what it knows."""

from __future__ import annotations

from typing import Any, Final

from mnemostore.domain import NewMessage

__all__ = ["ADA_TELEGRAM", "CRON", "EDINBURGH", "HANDBOOK", "HANDBOOK_SOURCE", "PEOPLE", "SYSTEM_PROMPT"]

# (key, channel, channel user id, username, display name, preferred model)
PEOPLE: Final = (
    ("ada", "discord", "208143755432198144", "ada.l", "Ada Lovelace", "gpt-4o-mini"),
    ("grace", "telegram", "7741093352", "grace_h", "Grace Hopper", "claude-3-5-haiku"),
    ("linus", "discord", "339120557910818817", "linus_t", "Linus", None),
)
# Ada also writes from Telegram: the same user, a second identity.
ADA_TELEGRAM: Final = ("telegram", "5518820347", "ada_lovelace")

SYSTEM_PROMPT: Final = "You are Mnemo, a concise and friendly assistant. Use the user's saved preferences."

EDINBURGH: Final = (
    "Packing for a rainy weekend in Edinburgh",
    [
        NewMessage(role="system", content=SYSTEM_PROMPT),
        NewMessage(
            role="user",
            content="I'm in Edinburgh Saturday and Sunday. What should I pack?",
            prompt_tokens=18,
            idempotency_key="discord:1251337000000000001",
        ),
        NewMessage(
            role="assistant",
            content="Rain is likely both days (11-12 °C). Bring a waterproof shell, a warm layer and shoes that "
            "cope with wet cobbles; an umbrella struggles in the wind there.",
            model="gpt-4o-mini",
            prompt_tokens=142,
            completion_tokens=41,
        ),
        NewMessage(
            role="user",
            content="Only hand luggage, so keep it short.",
            prompt_tokens=9,
            idempotency_key="discord:1251337000000000002",
        ),
        NewMessage(
            role="assistant",
            content="Shell jacket, one fleece, two tops, jeans, waterproof trainers, a travel adapter. Wear the "
            "bulkiest items on the plane.",
            model="gpt-4o-mini",
            prompt_tokens=201,
            completion_tokens=33,
        ),
    ],
)

CRON: Final = (
    "Why does my cron job run twice?",
    [
        NewMessage(role="system", content=SYSTEM_PROMPT),
        NewMessage(
            role="user",
            content="My backup cron job runs twice every night at 02:00. Why?",
            prompt_tokens=16,
            idempotency_key="telegram:88412",
        ),
        NewMessage(
            role="assistant",
            content="Usually it is scheduled twice: once in your crontab and once in /etc/cron.d, or on two "
            "hosts. Run `crontab -l` and `grep -r backup /etc/cron*` to compare.",
            model="claude-3-5-haiku",
            prompt_tokens=98,
            completion_tokens=47,
        ),
        NewMessage(
            role="user",
            content="Found it in both places, thanks!",
            prompt_tokens=8,
            idempotency_key="telegram:88413",
        ),
        NewMessage(
            role="assistant",
            content="Glad it's solved. Keep the /etc/cron.d entry: it is versioned with the server config.",
            model="claude-3-5-haiku",
            prompt_tokens=131,
            completion_tokens=22,
        ),
    ],
)

HANDBOOK_SOURCE: Final = "handbook"
HANDBOOK: Final[list[dict[str, Any]]] = [
    {
        "external_id": "travel/luggage",
        "title": "Luggage allowance",
        "content": "Hand luggage: one bag up to 10 kg and 55 x 40 x 20 cm, plus one small personal item.",
        "metadata": {"section": "travel"},
    },
    {
        "external_id": "travel/weather",
        "title": "Checking the weather",
        "content": "Use the weather tool for forecasts up to 7 days ahead; beyond that, quote climate averages.",
        "metadata": {"section": "travel"},
    },
    {
        "external_id": "ops/cron",
        "title": "Scheduled jobs",
        "content": "Server cron jobs live in /etc/cron.d and are deployed with the server configuration.",
        "metadata": {"section": "ops"},
    },
    {
        "external_id": "style/tone",
        "title": "Tone of voice",
        "content": "Answer in at most three sentences unless asked for detail; never invent facts.",
        "metadata": {"section": "style"},
    },
]
