"""Which suicide-risk topics a turn asks about (or a client discloses), by meaning, not by keyword.

A risk assessment is asked in many ways ("do thoughts of suicide ever come?", "have you felt
you'd be better off not waking up?", "is there anything at home you could use?"), and a report
that says "not assessed" after four direct questions teaches the trainee to stop asking. Each
topic is a set of phrasings (regular expressions over a normalised text) written from the
structured suicide-risk assessment literature (ideation, history, plan, intent, means,
protective factors, safety planning). Some phrasings only mean risk once the conversation is
about suicide or self-harm ("do you have a plan?", "what keeps you going?"): those are ``gated``
and fire only when the turn itself or a recent utterance in ``context`` mentions suicide,
self-harm or wanting to die.

The risk topic ids are the ``must_assess`` vocabulary the feedback side checks a session
against; ``detect_risk`` is what it calls, for trainee questions and client disclosures alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

RISK_TOPICS: dict[str, str] = {
    "ideation": "Suicidal thoughts: thoughts of suicide, of death, of not wanting to be alive",
    "self_harm": "Self-harm: hurting oneself without intending to die (cutting, burning...)",
    "plan": "A plan: how, when or where the person would end their life",
    "intent": "Intent: how likely the person is to act on the thoughts, how close they have come",
    "means": "Means: access to pills, weapons, ropes or other ways to act, and removing them",
    "protective_factors": "Protective factors: reasons for living, what has kept the person safe",
    "safety_plan": "Safety plan: what to do and whom to contact if the thoughts get worse",
    "history": "History: past attempts or self-harm, suicide in the family",
}
"""Risk topic id -> what it covers (ids are stable: personas' ``must_assess`` names them)."""

TOPIC_NAMES: dict[str, str] = {
    "ideation": "suicidal thoughts", "self_harm": "self-harm", "plan": "a plan",
    "intent": "intent", "means": "access to means", "protective_factors": "what keeps them safe",
    "safety_plan": "a safety plan", "history": "past attempts",
}
"""What a trainee reads for each topic, in a coach card or a warning ("ask about a plan")."""

_YOU = r"(?:you|your|yourself|u|i|my|myself|me|he|she|they|him|her|them|themselves)"
_SELF = r"(?:yourself|myself|himself|herself|themselves|themself|ourselves)"
_DIE = (r"(?:suicid\w*|kill(?:s|ed|ing)? " + _SELF + r"|tak(?:e|es|ing|en) (?:your|my|his|her|"
        r"their) (?:own )?li(?:fe|ves)|end(?:s|ed|ing)? (?:your|my|his|her|their) (?:own )?li(?:fe|"
        # "end it", but not "in the end it's...", "end it with Jess", "ending things with her"
        r"ves)|(?<!the )\bend(?:s|ed|ing)? it(?: all)?\b(?!['’]s| with\b)|"
        r"\bend(?:ing)? things\b(?! with\b)|(?:wants?|wanted|wanting|wish|"
        r"wishes|wished|wishing) (?:to|you could|i could|you were|i was|i were) (?:die|be dead|dea"
        r"d|"
        r"disappear|not wake up|not be here|not exist|just stop existing|go to sleep and not wake"
        r")|dark(?:est)? thoughts|giv(?:e|ing) up on (?:life|everything)|want(?:s|ed)? (?:it all|e"
        r"verything|it) to (?:stop|end)|(?:think|"
        r"thinking|thought)s? (?:of|about) (?:death|dying|suicide|ending|killing|not being|"
        r"taking (?:all )?(?:the|my) (?:pills|tablets))|all (?:of )?(?:my|the|your) (?:pills|"
        r"tablets|meds) at once|(?:tak\w*|swallow\w*) (?:all|every one) (?:of )?(?:the|my|your|"
        r"his|her) (?:pills|tablets|painkillers|meds|medication|medicines|insulin|sleeping pills|"
        r"paracetamol)|(?:join|joining|be with) (?:him|her|them|the person (?:you|they|i) "
        r"lost)|disappear (?:for ever|forever|for good)|see (?:the|any) point (?:in|of) (?:living|"
        r"going on|carrying on|being alive|life|anything)|(?:not|n'?t|never) (?:to )?(?:wake|wakin"
        r"g)"
        r" up|not (?:be|being) (?:here|around|alive)|"
        r"better off (?:dead|not (?:waking|being|living|here|around|alive))|better off (?:without|"
        r"if i was gone|if i wasn'?t here|if you weren'?t "
        r"here)|(?:not|never) (?:to )?wake up|(?:don'?t|didn'?t|do not|did not|no longer) want to"
        r" (?:live|be alive|be here|go on|exist|wake up|carry on)|not (?:wanting|want) to (?:live|"
        r"be alive|be here|go on|exist|wake up)|(?:no|any) (?:point|reason) (?:in |to )?(?:living|"
        r"live|going on|carrying on|being alive|being here)|(?:life|living) (?:is(?:n'?t| not)?|"
        r"was(?:n'?t| not)?|feels?|isn'?t|doesn'?t (?:feel|seem)|does not (?:feel|seem)) (?:not )?"
        r"(?:worth (?:living|it)|pointless)|thoughts? "
        r"(?:of|about) (?:death|dying|being dead|not being here|not being alive)|overdos\w*|"
        r"hang(?:ing)? " + _SELF + r"|(?:can'?t|cannot|couldn'?t) (?:go on|carry on|keep going)"
        r"|not be (?:here|around|alive) anymore|dead and gone|rather be dead|rather not be (?:here|"
        r"alive)|wish(?:es|ed|ing)? (?:you|i) (?:weren'?t|wasn'?t|were not|was not) "
        r"(?:alive|here|around|born))")
_HARM = (r"(?:self[- ]?harm\w*|self[- ]?injur\w*|(?:hurt|harm|cut|burn|hit|punch|scratch|injur|"
         r"starv)\w* " + _SELF + r"|(?:cut|cuts|cutting|burn|burns|burning|scratch\w*) "
         r"(?:my|your|his|her|their) (?:arms?|legs?|wrists?|skin|thighs?|stomach|body)\b|"
         r"cutting(?! (?:down|back|out|it|the|in|off|up|corners))|"
         r"do(?:ing)? (?:something|things) to (?:hurt|harm) " + _SELF + r"|(?:do|did|doing) to "
         + _SELF + ")")


@dataclass(frozen=True)
class _Rule:
    topic: str
    pattern: re.Pattern[str]
    gated: bool
    """Only counts when the turn or its context is about suicide or self-harm."""


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


_ANY = _rx(_DIE + "|" + _HARM)

_SAFETY_PLANNING = (
    r"\bplan\w*\b[^.?!]{0,40}\b(?:(?:for |about )?keep(?:s|ing)? (?:you|yourself|me|myself|him|"
    r"her|them) safe|stay(?:s|ing)? safe|safety|for what (?:to do|you(?:'d| would| could| can| "
    r"will) do) (?:if|when)|for (?:if|when) (?:things|the thoughts|it|those thoughts|these "
    r"thoughts|they|you))")
_KEEP_SAFE_PLAN = r"\bplan\w*\b[^.?!]{0,40}\bkeep(?:s|ing)? (?:you|yourself|me|myself) safe\b"
"""Making a plan to stay safe is safety planning, not the client's plan to act ("Let's make a
plan together for keeping you safe", "Shall we make a plan for what to do if the thoughts get
worse?"): ``detect_risk`` then does not count it as ``plan`` too."""


_RULES: tuple[_Rule, ...] = (
    # ideation: any mention of suicide, wanting to die, not wanting to be here
    _Rule("ideation", _rx(_DIE), False),
    _Rule("ideation", _rx(r"\bdark(?:est)? thoughts\b|\bthoughts? (?:like that|of harming)|"
                          r"\bhave (?:these|those|the) thoughts\b|\bhow often do (?:these|those|the"
                          r"y) (?:thoughts )?come\b|\bthoughts come\b|\bwhen (?:these|those|the) "
                          r"thoughts\b|\bgive up on (?:life|everything)\b|"
                          r"\b(?:everyone|people|they|your family) (?:would be|'?d be) better off\b"
                          r"|\bdisappear (?:for ever|forever|for good)\b|\bstop existing\b"), True),
    # self-harm
    _Rule("self_harm", _rx(_HARM), False),
    _Rule("self_harm", _rx(r"\b(?:marks|scars|wounds|cuts|burns) on (?:your|my) (?:arms?|legs?|"
                           r"wrists?|body|skin)\b|\bhurt(?:ing)? (?:your|my) (?:body|arms?|wrists?|"
                           r"legs?)\b"), False),
    # plan: how, when, where
    _Rule("plan", _rx(r"\bplan(?:s|ned|ning)? (?:to|for|how|of|on) (?:" + _DIE + r"|die|dying|do "
                      r"it|doing it|act|acting|hurt|harm|end|kill)|\b(?:" + _DIE + r")\b[^.?!]{0,"
                      r"40}\bplan|\bhow (?:you|i|he|she|they)(?:'?d| would| might| could| will|'?l"
                      r"l)"
                      r" (?:do it|end it|kill|take|go about it|end (?:your|my|things|your life))|"
                      r"\b(?:thought|worked out|figured out|decided|thought through|imagined|"
                      r"pictured|researched|looked up) (?:about )?(?:how|when|where|the way|a "
                      r"(?:way|method|date|time|place)|what (?:you|i) would use|ways? to)|"
                      r"\b(?:a|any|the|what) (?:method|means|way) (?:you|i)(?:'?d| would| might)"
                      r"|\bset (?:a )?(?:date|time)|\bwritten (?:a )?(?:note|letter|goodbye)|"
                      r"\bsuicide note\b|\bgiv(?:e|ing|en) (?:away )?(?:your|my) (?:things|"
                      r"belongings|stuff) away\b|\bgiv(?:e|ing|en) away (?:your|my) (?:things|"
                      r"belongings|stuff|possessions)"), False),
    _Rule("plan", _rx(r"\bdecided on (?:a|the) (?:method|way|date|place)|\bwhich (?:pills|tablets|"
                      r"method|way|"
                      r"place)|\bthought about doing\b|"
                      r"\b(?:i'?d|i would|i'?ll|i will|i could|i might) (?:take|jump|hang|use|driv"
                      r"e|"
                      r"overdose|swallow|step)\b|\bdecide to do it\b"), True),
    _Rule("plan", _rx(r"\b(?:a|any|some|the|your|made a) (?:specific |particular |concrete )?plans?"
                      r"\b|\bhow (?:you|i) would do it\b|\bhow you'?d do it\b|\bwhen (?:you|i) "
                      r"would do it\b|\bwhere (?:you|i) would (?:do it|go)\b|\bhow far (?:have|"
                      r"has|did) (?:you|i|that|it|the plan)"), True),
    # intent: likelihood of acting, how close
    _Rule("intent", _rx(r"\b(?:intend|intention|intent)\w*|\bact(?:ed|ing)? on (?:th(?:ese|ose|e"
                        r"m|at|is)|the|your|my|any) ?(?:thoughts?|urges?|feelings?|impulses?|plan)"
                        r"?|\bhow (?:close|near) (?:have|did|has|are|were) (?:you|i)\b|\bhow likely"
                        r"\b|\b(?:do|would|will|are) you (?:think you(?:'ll| will| would| might)|"
                        r"expect to|going to|planning to|mean to|want to) (?:actually )?(?:do it|"
                        r"act|go through|follow through|try)|\bgo(?:ing)? through with (?:it|that)"
                        r"|\bfollow(?:ing)? through\b|\bcome close to\b|\bhow strong (?:is|are) "
                        r"(?:the|that|those|these) (?:urges?|pull|wish|thoughts?|feelings?)\b|"
                        r"\b(?:will|would) you (?:act|do it|try it again|do something)\b|"
                        r"\bsafe (?:right now|today|tonight|at the moment|at this moment)\b|"
                        r"\b(?:right now|today|tonight),? (?:are|do) you (?:feel )?(?:safe|at risk)"
                        r"|\bkeep (?:yourself|myself) safe (?:tonight|today|right now)\b"), True),
    # means: access to lethal means, removing them
    _Rule("means", _rx(r"\b(?:gun|guns|firearms?|rifle|shotgun|pistol|weapons?|rope|ligature|"
                       r"noose|razor blades?|blades?|knives|knife|poison|pesticides?|bleach|"
                       r"stockpil\w*|stash(?:ed)?|hoard\w*|sav(?:e|ed|ing) up (?:your |my |some )?"
                       r"(?:sleeping )?(?:pills|"
                       r"tablets|medication|meds)|(?:pills|tablets|medications?|meds|painkillers|"
                       r"paracetamol|insulin|sleeping pills|prescriptions?) (?:at home|in the house"
                       r"|saved|stored|put away|that you (?:keep|have|could)|you (?:keep|have|"
                       r"could))|lock(?:ed)? (?:them |it )?(?:away|up)|hand (?:\w+ ){0,2}(?:in|ove"
                       r"r)\b|keep (?:the|"
                       r"your|my) (?:pills|tablets|medication|meds) (?:somewhere|with|away|locked)"
                       r"|(?:get|got|getting) rid of "
                       r"(?:the|them|it|those|any)|hand (?:them|it) (?:in|over)|access to|"
                       r"(?:at home|in the house|around you) (?:that )?(?:you|i) could use|get hol"
                       r"d of|(?:look after|"
                       r"hold on to|keep hold of|take charge of|lock up|hand over|hand in|keep) "
                       r"(?:your"
                       r"|the"
                       r"|my) (?:medication|pills|tablets|meds|insulin|painkillers|paracetamol)|"
                       r"(?:bridge|railway|train tracks|rooftop|roof|ledge|cliff|car exhaust))\b"),
          True),
    _Rule("means", _rx(r"\b(?:how many|how much|where do you keep|where are|enough|a "
                       r"supply of|a stock of|a lot of|plenty of|spare|old|leftover|extra) "
                       r"(?:\w+ ){0,2}(?:pills|tablets|medications?|meds|painkillers|paracetamol|"
                       r"insulin|sleeping pills|prescriptions?|medicines|ammunition|bullets|"
                       r"rope)\b|"
                       r"\bhow many (?:\w+ ){0,3}(?:pills|tablets|painkillers|meds)\b|"
                       r"\b(?:pills|tablets|medications?|medicines|meds|painkillers|paracetamol|"
                       r"insulin|drugs)\b[^.?!]{0,30}\b(?:at home|in the house|in your (?:\w+ )?"
                       r"(?:bag|car|room|cupboard|drawer|flat|cabinet)|lying around|to hand|within "
                       r"reach|around|reach|get to|get at)\b|\b(?:remov\w*|get(?:ting)? rid of|"
                       r"clear(?:ing)? out) (?:the|your|any|all the|those) (?:pills|tablets|meds|"
                       r"medication|medicines|painkillers|insulin)\b|"
                       r"\b(?:pills|tablets|meds|medication|medicines|painkillers)\b[^.?!]{0,25}"
                       r"\b(?:back to (?:the|a) (?:pharmacy|pharmacist|chemist)|to (?:your|a|the) "
                       r"(?:partner|husband|wife|friend|daughter|son|family|pharmacy|chemist)|"
                       r"locked (?:up|away)|out of the house)\b|\b(?:anything|something|what) "
                       r"(?:\w+ ){0,2}to do (?:it|that) with\b|"
                       r"\b(?:anything|something|things|what) "
                       r"(?:\w+ ){0,3}(?:at home|in (?:your|the|my) (?:flat|house|home|room|car|"
                       r"bathroom|kitchen|garage|shed)|in the house|around (?:you|the house)|"
                       r"within reach|to hand|nearby) (?:that )?(?:you|i) (?:could|might|would|"
                       r"'?d) (?:use|take)|\b(?:get|getting|got|buy|buying|bought|collect|"
                       r"collecting|collected|keep|kept) (?:\w+ ){0,2}(?:pills|tablets|painkillers|"
                       r"paracetamol|a gun|a rope|ammunition)|\b(?:remove|removing|clear|clearing|"
                       r"lock|locking|put|putting|give|giving|take|taking) (?:\w+ ){0,3}(?:out of|"
                       r"away from) (?:the|your) (?:house|home|flat|room|reach)|\b(?:hose|"
                       r"(?:medicine|bathroom) (?:cabinet|cupboard)|balcony|high place|tall "
                       r"building|motorway)\b"), True),
    _Rule("plan", _rx(r"\bmethods?\b|\b(?:picked|chosen|chose|choose|decided on|fixed|set) "
                      r"(?:a|the|any) (?:time|place|date|day|spot|way|location)\b"), True),
    _Rule("means", _rx(r"\bstockpil\w*|\bstash(?:ed)? (?:of )?(?:my |the |your |some )?"
                       r"(?:sleeping )?(?:pills|tablets|meds|medication|painkillers)\b"), False),
    _Rule("means", _rx(r"\baccess to (?:a |any )?(?:gun|guns|firearms?|weapons?|pills|medication|"
                       r"means)\b|\b(?:have|keep|own) (?:a |any )?(?:gun|guns|firearms?)\b"),
          False),
    # protective factors: reasons for living
    _Rule("protective_factors", _rx(
        r"\breasons? (?:for|to) (?:living|live|stay(?:ing)? alive|keep(?:ing)? going|go(?:ing)? on"
        r"|be(?:ing)? here|stay(?:ing)? (?:here|around))\b|\bwhat makes (?:life|living|it) worth"
        r"|\bworth living for\b|\bstay(?:ed|ing)? alive\b|\b(?:kept|keeps|keep|has kept|holds?|"
        r"held|stopp?(?:ed|s)?|stopping|pulls?|pulled|gets|got|brings|brought) (?:you|me) "
        r"(?:back|going|alive|safe|here|hanging on|from|through|away from)|\bwhat (?:stops|stopped"
        r"|has stopped|keeps|has kept|kept|holds) (?:you|me)\b|\b(?:who|what) (?:do you|would "
        r"you|are you) (?:live|living|stay|hold on) for\b|\bhold(?:ing)? on (?:for|to)\b|"
        r"\blive for\b|\banchors?\b|\bwhat gives you hope\b|\bhopes? for the future\b|"
        r"\blooking forward to\b|\bwho (?:are|is) the people (?:who|that) (?:matter|keep|need)\b|"
        r"\bwho would miss you\b|\bhold(?:s|ing)? you back\b|couldn'?t do (?:that|it) to "
        r"(?:them|him|her|my)"
        ), True),
    _Rule("protective_factors", _rx(r"\breasons? for living\b|\bwhat (?:has )?(?:kept|keeps) you "
                                    r"(?:alive|safe)\b"), False),
    # safety plan: what to do, whom to contact
    _Rule("safety_plan", _rx(_KEEP_SAFE_PLAN), False),
    _Rule("safety_plan", _rx(_SAFETY_PLANNING), True),
    _Rule("safety_plan", _rx(r"\bkeep(?:s|ing)? (?:you|him|her|them) safe\b"), True),
    _Rule("safety_plan", _rx(
        r"\bsafety plan\w*|\bcrisis (?:line|number|team|service|plan|card)\b|\b(?:samaritans|988)"
        r"\b|\bkeep(?:ing)? (?:yourself|myself) safe\b|\b(?:i'?d|i would|i could|i'?ll|i will|you "
        r"could|you would|you'?d) (?:call|ring|text|phone|contact|tell)\b[^.?!]{0,30}\bif (?:it|"
        r"things) (?:got|get|gets) (?:really |that |too |very )?(?:bad|worse)"), False),
    _Rule("safety_plan", _rx(
        r"\b(?:hotline|helpline|lifeline|911|999|112|111)\b|\bemergency (?:department|room|"
        r"services|number|contact)s?\b|\bA ?& ?E\b|\bstay(?:ing)? safe\b|\bsafely\b|"
        r"\bmake (?:your|the) (?:home|house|flat|room|place) safer\b"), True),
    _Rule("safety_plan", _rx(
        r"\b(?:who|whom|which person|what number|where)(?: else)? (?:could|would|can|will|might|"
        r"do|should) (?:you|i) (?:call|contact|reach(?: out to)?|turn to|ring|text|talk to|go|"
        r"phone|tell|lean on)\b|\bwhat (?:could|would|can|will|might|do) (?:you|i) do (?:if|when"
        r"|the next time|next time)\b|\bif (?:the|these|those|things|it|they|the thoughts?|the "
        r"urges?|you)(?: ever)? (?:get|gets|got|come|comes|feel|felt|become|becomes|start|"
        r"starts|return|returns|came back|come back)(?: back)? (?:that |this |so |really |too "
        r")?(?:bad|worse|strong|stronger|much|overwhelming|back|again|like that|unbearable)\b|"
        r"\bwarning signs?\b|\b(?:plan|steps|list) for (?:when|if) (?:things|the thoughts|it|those "
        r"thoughts|these thoughts|they)\b|"
        r"\bcoping (?:plan|strategies|steps)\b"), True),
    # history: past attempts, past self-harm, family history
    _Rule("history", _rx(
        r"\b(?:attempt(?:s|ed|ing)?|tried|try|trying|made an attempt)\b[^.?!]{0,30}\b(?:suicide|"
        r"to (?:kill|end|take|hurt|harm|overdose)|on your life|your life|before|in the past|"
        r"previously|ever)|\b(?:past|previous|earlier|prior|last) (?:suicide )?attempts?\b|"
        r"\bsuicide attempts?\b|\b(?:ever|before|previously|in the past) (?:tried|attempted|"
        r"taken an overdose|felt like this|felt this (?:way|low|bad)|"
        r"had (?:these|those|thoughts like)|been (?:this|that) (?:low|bad))\b|\b(?:have|has) "
        r"(?:you|anyone|someone) ever (?:tried|attempted|hurt|harmed|cut|overdosed|taken)\b|"
        r"\bhistory of\b|\b(?:anyone|someone|anybody) (?:in your family|close to you|you know)"
        r"[^.?!]{0,40}(?:suicide|killed|t(?:ake|ook|aken) (?:their|his|her) (?:own )?life|died by)|"
        r"\bsince then\b|\b(?:acted|done that|done it) [^.?!]{0,30}(?:in the past|before)|"
        r"\bever acted on\b|"
        r"\b(?:died|death) by suicide\b|\bfirst time (?:you(?:'ve| have)|these thoughts)"
        r"|\bhow long (?:have|has) (?:you|this|these thoughts|that) (?:had|been)\b"), True),
)

_HISTORY_STRONG = _rx(r"\b(?:past|previous|prior) (?:suicide )?attempts?\b|\bsuicide attempts?\b|"
                      r"\battempted (?:suicide|to (?:kill|end|take))\b|\b(?:ever|before|"
                      r"previously) (?:tried|attempted) to (?:kill|end|take|hurt|harm)\b|"
                      r"\b(?:died|death) by suicide\b|\b(?:took|taken|had) an overdose\b|"
                      r"\btried to "
                      r"(?:hang|drown|overdose|gas|poison|shoot|electrocute)|\btried t"
                      r"o (?:kill|end|take) (?:my|your|"
                      r"him|her|them|his|their)|\b(?:brother|sister|mum|mom|mother|dad|father|son|"
                      r"daughter|friend|uncle|aunt|cousin|partner|husband|wife|grandad|grandma) "
                      r"(?:took|killed|died by|hanged) (?:his|her|their|him|suicide|them)")


_SPECIFIC = {"plan", "intent", "means", "history"}
_SPECIFIC_ASKED = {"safety_plan", "protective_factors"}
"""Also specific in a question ("If the thoughts get stronger tonight, what will you do?" asks
about a safety plan); a client who says "I rang the crisis line when I wanted to die" tells both."""
_ASIDE = _rx(r"\b(?:when|whenever|if|once|while)\b(?: (?:the|those|these|your|such|any))? "
             r"(?:suicidal )?(?:thoughts?|urges?|feelings?)\b(?: (?:of|about) [^.?!,]{0,25}?)?"
             r"(?= (?:come|comes|start|starts|get|gets|are|were|is|hit|hits|return)\b)"
             r"|\bact(?:ed|ing)? on (?:the|those|these|your|such|any)? ?"
             r"(?:suicidal )?(?:thoughts?|urges?|feelings?)\b(?: (?:of|about) [^.?!,]{0,25})?")
"""A clause that names the thoughts only as the occasion of another question ("when the thoughts
of suicide come, who could you call?", "how likely is it you'd act on the thoughts of suicide?"):
the question asks about that other topic, not again about the thoughts."""
_THOUGHTS = _rx(r"\b(?:thoughts?|thinking|think|thought) (?:of|about) (?:" + _DIE + r")|\b(?:"
                + _DIE + r")[^.?!]{0,40}\b(?:recently|lately|these days|at the moment|right now)"
                r"\b(?![^.?!]*\bact)")


_SAFETY_PLAN = _rx(_SAFETY_PLANNING)
_OWN_PLAN = _rx(r"\bplan(?:s|ned|ning)? (?:to|how|of|on) (?:" + _DIE + r"|die|dying|do it|doing it|"
                r"act|acting|hurt|harm|end|kill)|\bhow (?:you|i)(?:'?d| would| might| could) (?:do "
                r"it|end it|kill)")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'").replace("‘", "'")).strip()


CONTEXT_READ = 12
"""Utterances before this one that the meaning readers look back over (``risk_meaning``: the
head's "about risk" reading, and the key of what is remembered). The rules' gate reads further:
once suicide or self-harm has come up anywhere earlier in the session, it stays open
(``raised``). Until stop 28 it read only these twelve, and a long risk assessment whose answers
were all denials ("No, nothing like that") outran it: six exchanges after the last word of
suicide, "Would you be willing to take the tablets back to the pharmacy this week?" was coached
as a closed question to rewrite (seen holding a Farida session)."""


@lru_cache(maxsize=16384)
def about_risk(text: str) -> bool:
    """True when the text mentions suicide, wanting to die or self-harm in any phrasing.
    Remembered: the coach re-reads the whole session's gate for every earlier turn."""
    return bool(_ANY.search(_norm(text)))


def risk_raised(context: Sequence[str]) -> bool:
    """Suicide or self-harm came up somewhere in ``context`` (the session so far)."""
    return any(about_risk(c) for c in context)


def conversation_about_risk(text: str, context: Sequence[str] = (), *,
                            raised: bool = False) -> bool:
    """The gate: ``text`` or an utterance before it mentions suicide, wanting to die or
    self-harm ("do you have a plan?" is then a risk question). ``context`` is read whole;
    ``raised`` says it came up earlier still (``risk_raised`` of what ``context`` leaves out)."""
    return raised or about_risk(text) or risk_raised(context)


def detect_risk(text: str, context: Sequence[str] = (), *, raised: bool = False) -> list[str]:
    """The risk topic ids ``text`` asks about or discloses, in ``RISK_TOPICS`` order.

    ``context`` is the conversation before it (oldest first): once suicide or self-harm has come
    up there (or ``raised``: earlier still), "do you have a plan?" or "what keeps you going?" are
    risk questions; before that they are not."""
    norm = _norm(text)
    if not norm:
        return []
    gate = conversation_about_risk(norm, context, raised=raised)
    found = {r.topic for r in _RULES if (gate or not r.gated) and r.pattern.search(norm)}
    if _HISTORY_STRONG.search(norm):
        found.add("history")
    # "Have you made plans to end your life?" asks about a plan, not (again) about thoughts: the
    # suicide words count as ideation only when no more specific topic is asked, or when the
    # thoughts themselves are asked about ("are you thinking about suicide, and how?").
    if "plan" in found and _SAFETY_PLAN.search(norm) and not _OWN_PLAN.search(norm):
        found.discard("plan")
    specific = _SPECIFIC | (_SPECIFIC_ASKED if "?" in norm else set())
    if ("ideation" in found and found & specific
            and not _THOUGHTS.search(_ASIDE.sub(" ", norm))):
        found.discard("ideation")
    return [t for t in RISK_TOPICS if t in found]
