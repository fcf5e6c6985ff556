"""Fit a conversation into a model's context window: system prompt, a summary of earlier turns,
the recent turns, and room for the reply.

Why not a tokenizer: the exact one is the server's (and fetching one at run time is not allowed);
an estimate that errs on the large side is enough to stay inside the window, and a server that
still reports an overflow teaches the real size (``limits.learn_window``).

Why an extractive summary rather than a model-written one: it costs no model call on the way to
the first token, cannot invent anything, and is the same on every retry. It keeps the gist of
each earlier exchange (the first words of each side), newest first, as far as its share of the
budget allows, and says how many exchanges it leaves out.

Why a cap on the number of messages as well (``RECENT_MESSAGES``): the OpenAI SDK walks every
message of a request in Python before sending it (its type-directed transform, about 0.25 ms a
message on one of our cores), on the way to the first token. A 40-turn session paid some 20 ms
a reply for it. The earlier turns move into the system prompt word for word when they fit the
room left, as gists otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

CHARS_PER_TOKEN = 3.2
"""English runs about 4 characters per token on common tokenizers; 3.2 overestimates on purpose."""
MESSAGE_OVERHEAD = 8
"""Tokens a chat template adds around each message (role markers)."""
SAFETY = 0.06
"""Share of the window kept free for estimation error."""
SUMMARY_SHARE = 0.15
"""Share of the history budget the summary of earlier turns may take."""
GIST_WORDS = 14
RECENT_MESSAGES = 16
"""Conversation messages sent as messages (8 exchanges); earlier ones go into the system prompt."""


class ContextTooSmall(ValueError):
    """The system prompt alone does not fit the window: the window setting is too small."""


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_tokens(message: BaseMessage) -> int:
    return estimate_tokens(_content(message)) + MESSAGE_OVERHEAD


def total_tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(message_tokens(m) for m in messages)


def _gist(text: str) -> str:
    words = " ".join(text.split()).split(" ")
    return " ".join(words[:GIST_WORDS]) + (" ..." if len(words) > GIST_WORDS else "")


def summarise(earlier: Sequence[BaseMessage], budget_tokens: int) -> str:
    """The earlier messages in a few lines: word for word when all fit ``budget_tokens``, else
    their gists, newest kept first when the budget runs out."""
    if not earlier or budget_tokens <= 0:
        return ""
    whole = [f"- {_who(m)}: {' '.join(_content(m).split())}" for m in earlier]
    head = "Earlier in this conversation (oldest first):"
    if estimate_tokens(head) + 20 + sum(estimate_tokens(x) + 1 for x in whole) <= budget_tokens:
        return head + "\n" + "\n".join(whole)
    head = "Earlier in this conversation (summary, oldest first):"
    lines: list[str] = []
    used = estimate_tokens(head) + 20
    for m in reversed(earlier):
        line = f"- {_who(m)}: {_gist(_content(m))}"
        cost = estimate_tokens(line) + 1
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
    left_out = len(earlier) - len(lines)
    if not lines:
        return f"(The conversation so far has {len(earlier)} earlier messages, not shown.)"
    more = f"\n- ({left_out} earlier messages not shown)" if left_out else ""
    return head + more + "\n" + "\n".join(reversed(lines))


def _who(m: BaseMessage) -> str:
    return "The counselor" if isinstance(m, HumanMessage) else "You"


def _content(m: BaseMessage) -> str:
    return m.content if isinstance(m.content, str) else str(m.content)


def _truncate(message: BaseMessage, tokens: int) -> BaseMessage:
    content = _content(message)
    keep = max(0, int((tokens - MESSAGE_OVERHEAD) * CHARS_PER_TOKEN))
    if len(content) <= keep:
        return message
    cut = "... " + content[len(content) - keep + 4:] if keep > 4 else ""
    return type(message)(cut)


def fit_messages(messages: Sequence[BaseMessage], window: int, reply_tokens: int,
                 recent: int = RECENT_MESSAGES) -> list[BaseMessage]:
    """``messages`` (system first, then the conversation) cut to fit ``window`` with room for a
    reply of ``reply_tokens``, and to at most ``recent`` conversation messages. Unchanged when
    they already fit.

    Kept: the system prompt whole (``ContextTooSmall`` if it cannot be), the newest messages as
    far as they fit (the last one always, shortened from the front if it alone is too long), and
    in the system prompt the earlier ones: word for word when the room left allows, else a
    summary. The kept part starts with a counselor message, as providers expect after the system
    prompt.
    """
    items = list(messages)
    system = items[0] if items and isinstance(items[0], SystemMessage) else None
    convo = items[1:] if system is not None else items
    available = int(window * (1 - SAFETY)) - reply_tokens
    if total_tokens(items) <= available and len(convo) <= recent:
        return items
    system_cost = message_tokens(system) if system is not None else 0
    room = available - system_cost
    if room < 64:
        raise ContextTooSmall(
            f"the system prompt needs about {system_cost} tokens and the reply {reply_tokens}, "
            f"more than the model's context window of {window} tokens allows; raise "
            "context_window (and the server's context size) or lower reply_max_tokens")
    summary_room = int(room * SUMMARY_SHARE)
    recent_room = room - summary_room
    kept: list[BaseMessage] = []
    used = 0
    for m in reversed(convo):
        cost = message_tokens(m)
        if used + cost > recent_room:
            if not kept:  # the trainee's turn alone is too long: keep its end
                kept.append(_truncate(m, recent_room))
                used = recent_room
            break
        if len(kept) >= max(1, recent):
            break
        kept.append(m)
        used += cost
    kept.reverse()
    while len(kept) > 1 and isinstance(kept[0], AIMessage):
        used -= message_tokens(kept[0])
        kept = kept[1:]
    earlier = convo[: len(convo) - len(kept)]
    # what the kept messages left of the room is the earlier turns' too
    summary = summarise(earlier, summary_room + max(0, recent_room - used))
    out: list[BaseMessage] = []
    if system is not None or summary:
        base = system.content if system is not None and isinstance(system.content, str) else ""
        out.append(SystemMessage((base.rstrip() + "\n\n" + summary).strip() if summary
                                 else base))
    return out + kept
