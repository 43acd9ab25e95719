"""Hotwords: the words and phrases a user expects, and the bonus the search gives them.

A biasing list reaches the search as token sequences in a prefix tree (WeNet's context
graph): a hypothesis that writes a hotword token by token gains `bonus` per matched token;
when the match breaks before the hotword is complete, the bonus gained on it is taken back,
so only whole hotwords keep theirs. A match that completes a hotword is kept (banked); a
longer hotword that continues it may still go on matching.

The LLM spells a word differently at the start of its answer and after a space (" Okafor"
is not "Okafor"), and the user may not write it in the case the model writes: each entry is
matched in four forms, with and without a leading space, as given and with its first letter's
case swapped.

Every utterance of a batch may have its own list; their trees live in one node table, each
utterance starting from its list's root. `ContextBias.deltas` gives the bonus every token
would add to each running hypothesis, `advance` moves the hypotheses on by the tokens they
took.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from west.data.rare_words import build_vocabulary, draw, own_rare_words


def read_hotwords(value: str | os.PathLike | Sequence[str] | None) -> list[str]:
    """A user's hotwords: a list of strings, a file (one word or phrase per line, `#`
    comments and blank lines skipped) or comma-separated text. Entries are stripped, inner
    spaces collapsed, duplicates dropped (first kept)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if _is_file(path):
            lines = path.read_text(encoding="utf-8").splitlines()
            value = [line for line in lines if not line.lstrip().startswith("#")]
        elif isinstance(value, os.PathLike) or _looks_like_file(str(value)):
            raise FileNotFoundError(
                f"{value}: no such hotwords file; expected a file of one word or phrase per "
                "line, or the words themselves, comma-separated"
            )
        else:
            value = value.split(",")
    words = []
    for i, w in enumerate(value):
        if not isinstance(w, str):
            raise TypeError(f"hotword {i}: expected a string, got {type(w).__name__} ({w!r})")
        w = " ".join(w.split())
        if w and w not in words:
            words.append(w)
    return words


def _looks_like_file(value: str) -> bool:
    """A value that can only be meant as a file: a path start or a list-file suffix."""
    return value.startswith(("/", "./", "../", "~")) or value.endswith((".txt", ".lst"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a long comma-separated list is no path
        return False


def spellings(word: str) -> list[str]:
    """The forms a hotword is matched in: with and without a leading space, as given and
    with its first letter's case swapped (no change for scripts without case)."""
    forms = [word, word[0].swapcase() + word[1:]]
    return list(dict.fromkeys(f for base in forms for f in (base, " " + base)))


def follows_words(form: str) -> bool:
    """Whether this form may come after another word: a form with its leading space, or
    a word of a script written without spaces (Chinese, Japanese, Thai). A form without
    the space is otherwise only the start of a transcript: elsewhere it would match inside
    another word."""
    c = form[0]
    return c == " " or unicodedata.east_asian_width(c) in "WF" or "\u0e00" <= c <= "\u0eff"


@dataclass(frozen=True)
class Writable:
    """The tokens a joint CTC search can write (a CTC branch over the training
    transcripts' tokens, `ctc_conf.vocab: train`): their ids, and the texts of those that
    decode to whole characters (text -> id)."""

    ids: frozenset[int]
    texts: dict[str, int]
    longest: int  # characters of the longest text

    @classmethod
    def of(cls, tokenizer, ids: Sequence[int]) -> Writable:
        ids = list(ids)
        texts = tokenizer.batch_decode([[i] for i in ids])
        whole = {t: i for t, i in zip(texts, ids) if t and "\ufffd" not in t}
        return cls(frozenset(ids), whole, max(map(len, whole), default=0))


def hotword_tokens(
    tokenizer,
    words: Sequence[str],
    writable: Writable | None = None,
    cache: dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]] | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Each form (`spellings`) of each hotword as LLM token ids, duplicates dropped: all of
    them (matched at the start of a transcript), and those that may follow another word
    (`follows_words`).

    With `writable` (a joint CTC search that can write only these tokens), a form the
    tokenizer spells with another token also gets its spelling in the fewest writable
    ones, when it has one: a name never heard in training (" Lisbon", a token the branch
    never learned) stays within reach as " Lis" "bon". `cache` (word -> its forms' tokens,
    for this tokenizer and `writable`) saves spelling a word again: lists repeat words."""
    every, inner = {}, {}
    for w in words:
        forms = cache.get(w) if cache is not None else None
        if forms is None:
            forms = word_tokens(tokenizer, w, writable)
            if cache is not None:
                cache[w] = forms
        every.update(dict.fromkeys(forms[0]))
        inner.update(dict.fromkeys(forms[1]))
    return [list(x) for x in every], [list(x) for x in inner]


def word_tokens(
    tokenizer, word: str, writable: Writable | None = None
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """One hotword's forms as token id tuples: all of them, and those that follow a word."""
    every, inner = [], []
    for form in spellings(word):
        seqs = [tokenizer(form, add_special_tokens=False).input_ids]
        if writable is not None and not writable.ids.issuperset(seqs[0]):
            seqs.append(segment(form, writable.texts, writable.longest))
        for seq in filter(None, seqs):
            every.append(tuple(seq))
            if follows_words(form):
                inner.append(tuple(seq))
    return every, inner


def segment(text: str, pieces: dict[str, int], longest: int) -> list[int] | None:
    """`text` as the fewest tokens whose texts are `pieces` keys (None: it has no such
    spelling); `longest`: the longest key."""
    best: list[list[int] | None] = [[]] + [None] * len(text)
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - longest), end):
            head, piece = best[start], pieces.get(text[start:end])
            if head is not None and piece is not None:
                if best[end] is None or len(head) + 1 < len(best[end]):
                    best[end] = head + [piece]
    return best[-1]


class ContextBias:
    """The prefix trees of a batch's hotword lists, and each hypothesis's place in them.

    Each list has two trees: one of every form, where a transcript starts, and one of the
    forms that may follow a word (hotword_tokens), where every match after the first token
    starts: its root is the list's `home`. A state is a node id. Node n has `score[n]`
    (bonus gained from its root), `banked[n]` (the part kept whatever comes next: up to the
    longest complete hotword on its path) and its children {token: node}.
    """

    def __init__(
        self,
        token_lists: Sequence[tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]],
        vocab: int,
        bonus: float,
        device: torch.device | str = "cpu",
        floor: float = -1.0,
        gate: float = -8.0,
    ):
        """token_lists[u]: utterance u's hotwords as (every form, forms that follow a word),
        token id sequences (hotword_tokens); `vocab`: the LLM's output size. Utterances with
        the same list share its trees. `floor` and `gate`: how joint CTC decoding treats
        hotword tokens (west.models.search.beam_search)."""
        if bonus <= 0:
            raise ValueError(f"hotword bonus must be > 0, got {bonus}")
        self.bonus, self.floor, self.gate = bonus, floor, gate
        self.children: list[dict[int, int]] = []
        self.home: list[int] = []  # node -> the root where a match after a word starts
        self._root: list[bool] = []  # node -> whether it is a root
        score, banked = [], []
        lists: dict[tuple, int] = {}
        self.root = []  # utterance -> its start root
        for every, inner in token_lists:
            # A token the LLM cannot write (beyond its output layer) cannot be matched.
            keys = [
                tuple(sorted({tuple(s) for s in seqs if s and max(s) < vocab}))
                for seqs in (every, inner)
            ]
            if tuple(keys) not in lists:
                home = self._tree(keys[1], score, banked, None)
                lists[tuple(keys)] = self._tree(keys[0], score, banked, home)
            self.root.append(lists[tuple(keys)])
        self.unbanked = torch.tensor(score, device=device) - torch.tensor(banked, device=device)
        roots = [n for n in range(len(self.children)) if self.is_root(n)]
        self.row = {r: i for i, r in enumerate(roots)}
        # The bonus of every token at each root: where a new match may start.
        self.root_bonus = torch.zeros(len(roots), vocab, device=device)
        for i, r in enumerate(roots):
            self.root_bonus[i, list(self.children[r])] = bonus

    def is_root(self, node: int) -> bool:
        return self._root[node]

    def _tree(self, seqs, score: list, banked: list, home: int | None) -> int:
        root = len(self.children)
        home = root if home is None else home
        ends = set()
        self.children.append({})
        self.home.append(home)
        self._root.append(True)
        score.append(0.0)
        banked.append(0.0)
        for seq in seqs:
            node = root
            for tok in seq:
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children.append({})
                    self.home.append(home)
                    self._root.append(False)
                    score.append(score[node] + self.bonus)
                    banked.append(banked[node])
                    self.children[node][tok] = nxt
                node = nxt
            ends.add(node)
        # banked: the score of the deepest complete hotword on the path (parents come first)
        for node in range(root, len(self.children)):
            if node in ends:
                banked[node] = score[node]
            for child in self.children[node].values():
                banked[child] = max(banked[child], banked[node])
        return root

    def initial(self, utts: Sequence[int]) -> list[int]:
        """The start state of each utterance in `utts`."""
        return [self.root[u] for u in utts]

    def deltas(self, states: Sequence[int]) -> torch.Tensor:
        """(R, V): what each token adds to the score of hypothesis r, in state states[r]:
        + bonus continuing its match (or starting one), minus the bonus not yet kept when it
        breaks the match (the stop tokens included)."""
        device = self.unbanked.device
        rows = [self.row[s if self.is_root(s) else self.home[s]] for s in states]
        index = torch.tensor(list(states), device=device)
        out = self.root_bonus[torch.tensor(rows, device=device)] - self.unbanked[index][:, None]
        for r, s in enumerate(states):
            if not self.is_root(s) and self.children[s]:
                tokens = torch.tensor(list(self.children[s]), device=out.device)
                out[r, tokens] = self.bonus
        return out

    def starts(self, states: Sequence[int], tokens: torch.Tensor) -> torch.Tensor:
        """(R, M) the bonus of starting a match that deltas gives each of `tokens` (R, M):
        0 where the token continues the hypothesis's match instead, or starts none."""
        device = self.unbanked.device
        rows = [self.row[s if self.is_root(s) else self.home[s]] for s in states]
        out = self.root_bonus[torch.tensor(rows, device=device)].gather(1, tokens)
        return out.masked_fill(self.continues(states, tokens), 0.0)

    def continues(self, states: Sequence[int], tokens: torch.Tensor) -> torch.Tensor:
        """(R, M) bool: whether each of `tokens` (R, M) continues the hypothesis's match."""
        out = torch.zeros_like(tokens, dtype=torch.bool)
        for r, s in enumerate(states):
            if not self.is_root(s) and self.children[s]:
                going = torch.tensor(list(self.children[s]), device=tokens.device)
                out[r] = torch.isin(tokens[r], going)
        return out

    def advance(
        self, states: Sequence[int], tokens: Sequence[int], may_start: Sequence[bool] | None = None
    ) -> list[int]:
        """The states after each hypothesis takes its token; where `may_start` is False, a
        token that would start a match starts none (it got no bonus for it)."""
        out = []
        for i, (s, tok) in enumerate(zip(states, tokens)):
            home = self.home[s]
            nxt = None if self.is_root(s) else self.children[s].get(tok)
            if nxt is None:  # no match goes on: a new one may start with this token
                start = self.children[s if self.is_root(s) else home].get(tok)
                nxt = start if start is not None and (may_start is None or may_start[i]) else home
            if not self.children[nxt]:  # a whole hotword and nothing longer: start again
                nxt = home
            out.append(nxt)
        return out

    def continuations(self, states: Sequence[int]) -> list[list[int]]:
        """The tokens that continue each hypothesis's match (none at a root)."""
        return [[] if self.is_root(s) else list(self.children[s]) for s in states]


# ---- the prompt route ---------------------------------------------------------------------
CONTEXT_ROUTES = ("auto", "prompt", "search", "both")


def routes(route: str, trained: bool, bonus: float) -> tuple[bool, bool]:
    """(in the prompt, in the search) for a route of CONTEXT_ROUTES. "auto": the prompt when
    the model was trained with lists there (context_conf), the search when the bonus is > 0."""
    if route not in CONTEXT_ROUTES:
        raise ValueError(f"unknown context route {route!r}; known: {CONTEXT_ROUTES}")
    if route == "auto":
        return trained, bonus > 0
    return route in ("prompt", "both"), route in ("search", "both")


def context_text(words: Sequence[str], template: str) -> str:
    """The prompt text of a biasing list ('' for an empty one)."""
    return template.replace("{words}", ", ".join(words)) if words else ""


class ContextSampler:
    """Training lists (context_conf): for a share `prob` of utterances, some of their own
    rare words and 0 to `max_distractors` rare words of other transcripts, shuffled.

    Rare words: those outside the `num_common` most frequent words of the training
    transcripts (west.data.rare_words, as the LibriSpeech biasing benchmark splits them; a
    transcript without spaces, e.g. Chinese, is one word).
    """

    def __init__(self, texts: Sequence[str], conf, seed: int = 0):
        vocab = build_vocabulary(texts, num_common=conf.num_common)
        self.common, self.rare = vocab.common, vocab.rare
        self.conf = conf
        self.seed = seed

    def sample(self, text: str, rng) -> list[str]:
        """A list for this transcript (`rng`: a random.Random)."""
        conf = self.conf
        if conf.prob <= 0 or rng.random() >= conf.prob:
            return []
        own = own_rare_words(text.split(), self.common)
        words = [w for w in own if rng.random() < conf.own_prob]
        n = rng.randint(0, min(conf.max_distractors, len(self.rare)))
        taken = set(own)
        words += draw(self.rare, n, lambda w: w not in taken, rng)
        rng.shuffle(words)
        return words


MAX_PHRASE_WORDS = 4  # a longer entry of a free-text prompt is running text, not a name


def prompt_hotwords(prompt: str) -> list[str]:
    """OpenAI's free-text `prompt` read as hotwords: entries separated by commas,
    semicolons or new lines ("Okafor, Lisbon, route 66"). An entry of more than
    MAX_PHRASE_WORDS words is running text: it gives only its words after the first that
    hold a capital letter or a digit (names, numbers), so that "the" and "of" get no bonus."""
    out = []
    for entry in re.split(r"[,;\n]", prompt):
        words = [w.strip(PUNCTUATION) for w in entry.split()]
        words = [w for w in words if w]
        if len(words) > MAX_PHRASE_WORDS:
            out += [w for w in words[1:] if any(c.isupper() or c.isdigit() for c in w)]
        elif words:
            out.append(" ".join(words))
    return read_hotwords(out)


PUNCTUATION = ' \t.!?:"()[]{}«»“”‘’'
