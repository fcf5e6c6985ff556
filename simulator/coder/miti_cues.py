"""What an utterance's words say about its MITI 4.2.1 code, as tokens a model can weigh.

AnnoMI labels questions, reflections and input, but not what trainees most need corrected or
praised: Confront, Persuade (with or without permission), Affirm, Seek and Emphasize. Each cue
family below is a handful of phrasings for one behaviour, written from the manual's definitions
(MITI 4.2.1, "Behavior Counts": one section per code). A cue is evidence, not a verdict: the
trained model (``coder.miti``) weighs the cue tokens with the words themselves, so "you should be
proud" is not advice and "it sounds like you don't care who you hurt" is not a reflection.

Context cues carry the two rules that depend on what came before (MITI 4.2.1, "Persuade with
Permission"): advice right after the client granted permission, or in the same turn right after
the counselor asked it, is Persuade with permission.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from simulator.coder.labels import Utterance

_LEAD = r"^(?:(?:so|and|but|okay|ok|well|now|right|alright|then|um|uh|hmm|yeah|look),?\s+)*"
_AUX = (r"(?:do|does|did|is|are|was|were|will|would|can|could|have|has|had|should|shall|may|"
        r"am|might|must|won'?t|don'?t|doesn'?t|didn'?t|isn'?t|aren'?t|wasn'?t|haven'?t|"
        r"hasn'?t|can'?t|couldn'?t|wouldn'?t|any|you'?d|you'?re|you)\b")

_FAMILIES: dict[str, str] = {
    "question": r"\?\s*$",
    "q_aux": _LEAD + _AUX,
    "q_wh": _LEAD + r"(?:what|how|why|where|when|who|whom|which|in what way)\b",
    "q_closed_wh": _LEAD + r"(?:how (?:many|much|old|long|often)|when|what time|which|where do "
                           r"you (?:buy|get|keep))\b",
    "q_tell": r"\b(?:tell me|describe|walk me through|talk me through|say (?:a bit )?more|"
              r"(?:can|could|would) you (?:tell|say|describe|talk|share|walk|explain))\b",
    "q_or": r"\bor\b[^?]*\?\s*$",
    "permission": r"\b(?:would it be (?:ok|okay|alright|all right|fine|helpful|useful)|is it (?:ok|"
                  r"okay|all right|alright)(?: with you)?(?: if| to)|may i|(?:can|could) i (?:shar"
                  r"e|"
                  r"offer|tell|give|ask|suggest|make|mention)|do you mind if|would you mind if|wou"
                  r"ld"
                  r" you like (?:me to|some|to hear|information)|would you be interested|if it'?s "
                  r"(?:ok|okay|all right|alright) with you|if you'?re interested|would it help if)"
                  r"\b",
    "seek": r"\b(?:what do you (?:think|make of|reckon)|what would you like (?:to (?:focus|start|t"
            r"alk|"
            r"tackle|get out|work on|do (?:first|next|today))|us to|me to)|where would you like|"
            r"how would you (?:like|feel about)|how does that sound|together|let'?s (?:work|look|"
            r"decide|put|figure)|shall we|can we (?:figure|look|work)|could we|we could|your ideas|"
            r"ideas do you have|you'?re the expert|hear yours|what do you reckon|first step should"
            r"|next step|on the agenda|add to our plan|help me understand)\b",
    "autonomy": r"\b(?:up to you|your (?:own )?(?:choice|decision|call|right|body|life|pace)|"
                r"you (?:can |get to |)decide|you get to|only you|no ?one (?:else )?(?:can|is goin"
                r"g)|"
                r"nobody (?:can|is going)|you don'?t have to|you'?re free to|take (?:it |this )?or "
                r"leave|you know (?:best|your own|what'?s)|you'?re the (?:one|expert|judge|best ju"
                r"dge)|"
                r"in your hands|the right to|right to say|whatever you (?:decide|choose|do)|final "
                r"say|in charge|driving seat|whatever pace|if at all|yours to|the choice .* is you"
                r"rs|"
                r"is yours|you can choose|i trust you|fine to say no|can stop this|you'?ll know)\b",
    "advice": r"\b(?:you (?:really |probably |definitely |just |seriously )?(?:should|ought to|nee"
              r"d to"
              r"|have to|must|could try|might (?:want to )?try|might find|could (?:tell|let|try|"
              r"consider|switch|start))|why don'?t you|i'?d (?:strongly )?(?:recommend|suggest|"
              r"advise|encourage)|my (?:advice|suggestion|concern)|if i were you|if it were me|"
              r"try (?:to|the|cutting|going)|the best thing|it(?:'s| is| would be| might be| may b"
              r"e)?"
              r" (?:be )?(?:a good idea|worth|wise|best|time|important|really important|sensible|"
              r"better)|it (?:would|might|may) (?:probably )?help|you'?d be (?:much )?(?:better|"
              r"healthier)|better off|(?:some|many|most|a lot of) people find|"
              r"what tends to work|(?:something|one thing) that (?:has )?help|one (?:idea|option|"
              r"thing you could|suggestion)|i'?m (?:a bit |a little |really )?(?:worried|concerned"
              r")(?: that| about)?|i think "
              r"(?:you'?d|you would|you should|you need)|have you considered|the only way|"
              r"the sensible thing|would make a (?:big |real )?difference|what you need|silly not "
              r"to|"
              r"the way to go|(?:the|your) only (?:answer|option|solution)|the answer is|please do"
              r"n'?t|"
              r"why not (?:just )?(?:try|switch|go|give|cut|stop)|you'?d do (?:much )?better|if yo"
              r"u "
              r"don'?t stop|"
              r"let'?s get you|perhaps a|you might find|might be worth)",
    "imperative": _LEAD + r"(?:just )?(?:try|stop|start|make|go|don'?t|put|keep|take|get|tell|"
                          r"throw|set|cut|switch|call|be realistic)\b",
    "confront": r"\b(?:excuses?|honest with yourself|kidding yourself|fooling yourself|lying to "
                r"yourself|in denial|selfish|you'?re an? alcoholic|addicted|ashamed|what were you "
                r"thinking|"
                r"don'?t you care|do you really think|how can you|seriously|"
                r"obviously (?:weren'?t|don'?t|didn'?t)|be realistic|doesn'?t add up|"
                r"i don'?t believe|only here because|got caught|not a good enough|you'?re not bein"
                r"g|"
                r"don'?t care|ridiculous|blaming|the drink talking|clearly don'?t|no, that|"
                r"that'?s not how|anyone can see|don'?t really mean|irresponsible|pretending|even "
                r"care|"
                r"trying to kid|and you know it|if you (?:really )?loved|you told me|"
                r"you said that|grown adults|not really listening|kind of "
                r"thinking|why can'?t you just|really cared|right to be angry|always say|wasting|"
                r"you know (?:it'?s wrong|suicide)|isn'?t a problem because|can'?t be bothered|"
                r"not going to manage|you'?re not really)\b",
    # MITI 4.2.1 "Confront": labelling, blaming, shaming, moralising, sarcasm, disagreeing,
    # arguing - also when phrased as a question or a reflection
    "judge": r"\b(?:lazy|laziness|weak|pathetic|stubborn|childish|immature|careless|reckless|"
             r"cop-?out|nonsense|rubbish|a joke|an? (?:addict|drunk|junkie|liar)|lying|lie to|"
             r"embarrass\w*|shame\w*|disgrac\w*|deserve better|grow up|get real|wake up and|"
             r"face (?:facts|the facts|the truth|reality|it)|pull yourself together|man up|"
             r"come on|(?:always|never) (?:say|do|listen|try|make|find|blame|have an?)|"
             r"rather (?:complain|moan|blame|whinge|sit)|blam(?:e|ing) (?:everyone|everybody|"
             r"others|other people|your|the)|feeling sorry for yourself|self-pity|"
             r"making (?:it|things) (?:up|worse)|you'?re (?:just|only|being) (?:being )?|"
             r"(?:just|only) (?:an? )?(?:excuse|lazy|scared|afraid|being)|whining|whinging|"
             r"moaning|avoiding (?:the|responsibility)|responsibility for|"
             r"(?:won'?t|don'?t|can'?t|refuse to) (?:admit|accept|see|face)|"
             r"not (?:trying|serious)|hard to believe|that'?s (?:not true|wrong|silly|"
             r"unfair|no way|not an|just)|you (?:clearly|obviously)|surely you|"
             r"what did you expect|how could you|how dare|who are you kidding|"
             r"don'?t you think (?:you'?re|you are|you'?ve|that'?s|it'?s)|"
             r"isn'?t it (?:obvious|time you)|no wonder|your own fault|brought (?:this|it) on|"
             r"(?:cared|care) (?:more|less) about|put (?:yourself|your \w+) (?:first|before)|"
             r"let (?:everyone|them|her|him|your \w+) down)",
    # sarcasm, rhetorical questions and confrontations in the form of a reflection (MITI
    # 4.2.1, "Confront": "includes sarcasm"; a reflection that judges is Confront)
    "sarcasm": r"(?:\b(?:you call that|call that|hardly (?:what i'?d )?call|i wouldn'?t call|"
               r"your idea of|who (?:exactly )?do you think|whose (?:idea|fault)|who'?s fault|"
               r"since when|oh,? (?:so|sure|right|really|great)|nice try|funny how|i'?m sure "
               r"(?:your|that)|how'?s that working|is that supposed to|do you hear yourself|"
               r"you can'?t seriously|are you kidding|you'?re kidding|what part of|"
               r"so you admit|you admit|and you (?:still |just )?(?:carry on|do it|keep) anyway|"
               r"(?:do|carry on|keep going) anyway|enjoy (?:being|playing)|"
               r"playing the|the martyr|the victim|the drama|(?:rather|sooner) (?:lose|blame|"
               r"complain|moan|make|have|keep|let)|happy to let|pick up the pieces|"
               r"(?:don'?t|doesn'?t) (?:think )?the rules apply|only care about|got caught|"
               r"until (?:the|your) (?:doctor|police|court|boss|wife|husband)|"
               r"(?:wow|really),? (?:a whole|that'?s)|in other words,? you (?:don'?t|"
               r"won'?t|just|only|think))|^(?:really|wow|oh)\b[^.?!]*\?)",
    "hedge": r"\b(?:though|but|if) (?:you(?:'ll| will)? know|you decide|it'?s (?:your|up to)|"
             r"whether you|that (?:appeals|suits|fits|works)|you want to|you'?d like|you know "
             r"what|see what you think|see if)|;? see what you think\b|if that (?:appeals|suits|"
             r"fits|works)",
    "affirm": r"\b(?:you'?ve (?:really |clearly |already )?(?:worked|shown|kept|been a|"
              r"been really|thought)|took (?:real |a lot of )?(?:courage|guts|strength|trust)|well "
              r"done|good for you|nice work|impressive|impressed|i admire|i appreciate|thank you "
              r"for|great idea|smart idea|sensible plan|creative|good decision|says a lot about yo"
              r"u|kind thin"
              r"g|"
              r"insight|you really care|you did well|you'?re (?:clearly |obviously |"
              r"a |very |resourceful|doing a lot)|strength|brave|you were (?:brave|organised|"
              r"really)|a real gift|a rock|you obviously put|loyal|determined|achievement|"
              r"stuck with it)\b",
    "reflect_stem": _LEAD + r"(?:it )?(?:sounds? like|seems? like|you'?re|you are|you feel|you "
                            r"felt|you'?ve|you have|you want|you don'?t|you'?d|you wish|your|part "
                            r"of you|on (?:the )?one hand|for you|since|when you|coming here|"
                            r"checking|carrying|saying no|watching|losing|that (?:number|money))",
    "info": r"\b(?:\d|units?|guidelines?|the (?:group|clinic|service|research|questionnaire|form|"
            r"test|results?|court|helpline|crisis team|waiting list)|research|studies|"
            r"most (?:people|adults)|tends? to|usually|is (?:a|an|one of|available)|are available|"
            r"can (?:take|happen|be)|per cent|percent|your (?:score|weight|"
            r"blood|next appointment)|this session|everything you say|i work for)\b",
    "greeting": r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|m+-?hm+|uh-?huh|okay|ok|"
                r"right|yeah|yes|sure|i see|thanks|thank you|bye|goodbye|oh,? right|hmm+|okay,? "
                r"(?:go on|thanks)|see you|take a seat|sorry|let me|bear with|nice to meet|good "
                r"to see|it'?s cold|bye for now)\b",
}
_PATTERNS = {k: re.compile(v, re.IGNORECASE) for k, v in _FAMILIES.items()}

_GRANT = re.compile(
    r"^(?:sure|yes|yeah|yep|ok(?:ay)?|alright|all right|fine|please|go (?:on|ahead)|tell me|"
    r"you can tell me|that would be|that'?s fine|i'?d like|i don'?t mind|i suppose|why not|"
    r"i'?m (?:listening|open|curious)|what (?:do|would) you (?:suggest|recommend|do)|what "
    r"should i|i'?d like some ideas)", re.IGNORECASE)
_STOP = {"i", "you", "a", "the", "to", "and", "it", "my", "your", "is", "of", "in", "that", "so",
         "me", "im", "youre", "be", "at", "for", "on", "just", "but", "this", "was", "do", "have",
         "its", "are", "with", "not", "if", "what", "about", "been"}


def _content(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower().replace("'", ""))
    return {w[:5] for w in words if w not in _STOP}


_ASKS_ADVICE = re.compile(
    r"\b(?:what (?:should|can|could|do|would) (?:i|we) do|what (?:do|would) you (?:suggest|"
    r"recommend|advise|do|think i should)|what should i|how (?:do|can|could|should) i (?:stop|"
    r"cut|get|make|deal|cope|handle|manage|fix|quit|start|sleep|tell|talk|find|avoid|keep|"
    r"change|do)|(?:should|could|can) i (?:try|stop|cut|start|use|take|switch|tell|go|do|ask)|"
    r"do you (?:think|reckon) i should|is it (?:ok|okay|safe|bad|better) (?:for me )?to|"
    r"any (?:tips|advice|ideas|suggestions)|(?:give|got) (?:me )?(?:some |any )?(?:advice|tips|"
    r"ideas|suggestions)|what(?:'s| is) the best (?:way|thing)|is there (?:anything|something) "
    r"(?:i can|i could|that (?:helps|would help))|what works|what helps|tell me what to do|"
    r"what are my options|what would help|would it help (?:if|to))\b", re.IGNORECASE)
"""A client question that asks for advice, information or options (MITI 4.2.1, "Persuade with
Permission": the client requests it). Any other client question ("What do you usually talk
about with people?") is not permission to advise."""


def asks_for_advice(client: str) -> bool:
    """True when the client's words ask for advice (not merely any question)."""
    c = client.strip().replace("’", "'")
    return "?" in c and bool(_ASKS_ADVICE.search(c))


def last_client(context: Sequence[Utterance]) -> str:
    for u in reversed(context):
        if u.speaker == "client":
            return u.text
    return ""


def cue_tokens(text: str, context: Sequence[Utterance] = (),
               before: Sequence[str] = ()) -> list[str]:
    """Cue tokens for one utterance: ``cue_<family>`` for each family whose phrasing occurs,
    plus context tokens. ``before`` are the earlier utterances of the same turn."""
    t = text.strip().replace("’", "'")
    tokens = [f"cue_{name}" for name, p in _PATTERNS.items() if p.search(t)]
    client = last_client(context)
    if client and _GRANT.search(client.strip().replace("’", "'")):
        tokens.append("ctx_granted")
    if asks_for_advice(client):
        tokens.append("ctx_client_asked")
    if before and _PATTERNS["permission"].search(before[-1]):
        tokens.append("ctx_asked_permission")
    if client:
        mine, theirs = _content(t), _content(client)
        share = len(mine & theirs) / len(mine) if mine else 0.0
        tokens.append(f"overlap{min(int(share * 4), 3)}")
    else:
        tokens.append("no_client")
    words = len(t.split())
    tokens.append("len1" if words <= 2 else "len2" if words <= 6 else "len3")
    return tokens


def is_question(text: str) -> bool:
    return bool(_PATTERNS["question"].search(text.strip()))


def has_cue(text: str, family: str) -> bool:
    return bool(_PATTERNS[family].search(text.strip().replace("’", "'")))
