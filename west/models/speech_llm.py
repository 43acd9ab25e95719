"""SpeechLLM: Whisper encoder -> projector -> causal LLM reading speech after a chat prompt.

Sequences are laid out as
    [prefix prompt] [speech embeddings (n_i)] [suffix prompt] [transcript + end-of-turn]
right-padded for training (labels -100 everywhere but the transcript) and left-padded
for generation, so every utterance in a batch sees exactly what it would see alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList

from west.config import ENGINES, DecodeConf, ModelArguments
from west.data.audio import HOP_LENGTH, SAMPLE_RATE
from west.distributed import full_shape, gathered
from west.models.context import ContextBias, Writable, context_text, hotword_tokens, routes
from west.models.ctc import CTCHead, CTCPrefixScorer
from west.models.encoder import WhisperEncoder
from west.models.llm import Prompt, lora_parameters, stop_token_ids
from west.models.masking import mask_frames
from west.models.repetition import cut_loop
from west.models.search import ignored_settings, search

logger = logging.getLogger(__name__)

IGNORE_ID = -100
# Speech tokens a second: 10 (Whisper's 50 frames / k = 5), ~3-4 after CTC compression;
# transcripts: ~3-5 tokens a second (English BPE, Chinese characters). 2 per vector is a
# bound the audio cannot exceed, so outputs past it are loops, not speech.
MAX_TOKENS_PER_SPEECH_VECTOR = 2.0
MAX_CACHED_HOTWORDS = 200_000  # words whose token forms a model keeps (lists repeat words)


class SpeechLLM(nn.Module):
    def __init__(
        self,
        config: ModelArguments,
        encoder: WhisperEncoder,
        projector: nn.Module,
        llm: nn.Module,
        tokenizer,
        prompt: Prompt,
        encoder_top: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config
        # The CTC branch (None without): registered first, where its blank used to be, so
        # the optimizer's parameter groups keep their order.
        embed = llm.get_input_embeddings()
        ctc = config.ctc
        self.ctc = None
        if ctc.weight > 0:
            self.ctc = CTCHead(
                embed.embedding_dim, embed.num_embeddings, ctc.weight, ctc.vocab, ctc.compression
            )
        self.encoder = encoder  # frozen (and cacheable) unless freeze_encoder is False
        self.encoder_top = encoder_top  # its trained last blocks (encoder_trainable_layers)
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.prompt = prompt
        # Widths and vocabulary size from the embedding module: under DeepSpeed ZeRO-3 its
        # local weight is an empty slice.
        self.llm_dim = llm.get_input_embeddings().embedding_dim
        self.llm_vocab = llm.get_input_embeddings().num_embeddings
        self.register_buffer(
            "prefix_ids", torch.tensor(prompt.prefix_ids, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "suffix_ids", torch.tensor(prompt.suffix_ids, dtype=torch.long), persistent=False
        )
        self.stop_ids = stop_token_ids(llm, tokenizer, prompt)
        self._warned_ignored = False
        self._ctc_writable: Writable | None = None  # ctc_writable(), built at first use
        self._hotword_forms: dict = {}  # word -> its token forms (hotword_tokens' cache)

    # ---- properties -------------------------------------------------------------
    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.llm.get_input_embeddings()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        # Non-reentrant checkpointing works with a frozen LLM whose inputs need grad.
        gc_kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        self.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs, **kwargs)

    # ---- speech path ------------------------------------------------------------
    def encode(
        self, mel: torch.Tensor, mel_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, n_mels, T) -> encoder frames (B, T', D_enc), lengths (B,)."""
        frozen = self.config.freeze_encoder
        mel = mel.to(self.encoder.conv1.weight.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return self.encoder(mel, mel_lens)

    def speech_embeddings(
        self,
        mel: torch.Tensor | None = None,
        mel_lens: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        enc_lens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Either mel features or cached `self.encoder` output -> (B, N, D_llm), lengths (B,)."""
        if enc is None:
            enc, enc_lens = self.encode(mel, mel_lens)
        if self.encoder_top is not None:
            top_dtype = next(self.encoder_top.parameters()).dtype
            enc, enc_lens = self.encoder_top(enc.to(top_dtype), enc_lens)
        if self.training:
            enc = mask_frames(enc, enc_lens, self.config.masking)
        proj_dtype = next(self.projector.parameters()).dtype
        speech, lens = self.projector(enc.to(proj_dtype), enc_lens)
        return speech, lens

    def llm_speech(
        self, speech: torch.Tensor, lens: torch.Tensor, ctc_logits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the LLM reads: the projected frames, or their CTC-compressed form
        (`ctc_logits`: the CTC branch's logits of `speech`, when computed already)."""
        if self.ctc is None:
            return speech, lens
        return self.ctc.compress(speech, lens, self.embed_tokens, ctc_logits)

    # ---- sequence assembly ------------------------------------------------------
    def _assemble(
        self,
        speech: torch.Tensor,
        speech_lens: torch.Tensor,
        text_ids: list[torch.Tensor] | None,
        left_pad: bool,
        with_prefix: bool = True,
        context_ids: list[list[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Build (B, L, D) input embeddings, (B, L) attention mask and (B, L) labels.

        `with_prefix=False` leaves out the prompt's start, which every row shares (decoding
        reads it once for the batch). `context_ids`: each row's biasing-list prompt tokens
        (context_conf), read right before its speech.
        """
        emb = self.embed_tokens
        dtype = emb.weight.dtype
        start = [emb(self.prefix_ids)] if with_prefix else []
        suffix = emb(self.suffix_ids)
        rows, labels = [], []
        for i in range(speech.shape[0]):
            context = []
            if context_ids is not None and context_ids[i]:
                ids = torch.tensor(context_ids[i], dtype=torch.long, device=speech.device)
                context = [emb(ids)]
            parts = [*start, *context, speech[i, : speech_lens[i]].to(dtype), suffix]
            n_prompt = sum(p.shape[0] for p in parts)
            label = [torch.full((n_prompt,), IGNORE_ID, dtype=torch.long, device=speech.device)]
            if text_ids is not None:
                parts.append(emb(text_ids[i]))
                label.append(text_ids[i])
            rows.append(torch.cat(parts))
            labels.append(torch.cat(label))
        length = max(r.shape[0] for r in rows)
        b, d = len(rows), rows[0].shape[1]
        inputs = rows[0].new_zeros(b, length, d)
        mask = torch.zeros(b, length, dtype=torch.long, device=speech.device)
        label_out = torch.full((b, length), IGNORE_ID, dtype=torch.long, device=speech.device)
        for i, (row, lab) in enumerate(zip(rows, labels)):
            n = row.shape[0]
            sl = slice(length - n, length) if left_pad else slice(0, n)
            inputs[i, sl], mask[i, sl], label_out[i, sl] = row, 1, lab
        return inputs, mask, (label_out if text_ids is not None else None)

    # ---- training -----------------------------------------------------------------
    def forward(
        self,
        text_ids: torch.Tensor,
        text_lens: torch.Tensor,
        mel: torch.Tensor | None = None,
        mel_lens: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        enc_lens: torch.Tensor | None = None,
        lm_weight: float | None = None,
        context_ids: list[list[int]] | None = None,
        **unused,
    ) -> dict[str, torch.Tensor]:
        """text_ids: (B, L) transcript token ids (no end token), padded; text_lens: (B,).

        `lm_weight` overrides the configured one for this batch (0 during a CTC-only warm-up,
        which then skips the LLM entirely). `context_ids`: biasing lists' prompt tokens per
        utterance (context_conf), none by default.
        """
        lm_weight = self.config.lm_weight if lm_weight is None else lm_weight
        speech, speech_lens = self.speech_embeddings(mel, mel_lens, enc, enc_lens)
        end = torch.tensor([self.prompt.end_id], device=text_ids.device)
        targets = [torch.cat([text_ids[i, : text_lens[i]], end]) for i in range(text_ids.shape[0])]
        out: dict[str, torch.Tensor] = {}
        loss = speech.new_zeros(())
        # The CTC branch's logits, computed once for its loss and for the compression.
        ctc_logits = None if self.ctc is None else self.ctc.logits(speech, self.embed_tokens)
        if lm_weight > 0:
            llm_speech, llm_lens = self.llm_speech(speech, speech_lens, ctc_logits)
            inputs, mask, labels = self._assemble(
                llm_speech, llm_lens, targets, left_pad=False, context_ids=context_ids
            )
            lm_loss = self.lm_loss(inputs, mask, labels)
            out["lm_loss"] = lm_loss.detach()
            loss = loss + lm_weight * lm_loss
        if self.ctc is not None:
            ctc_loss = self.ctc.loss(
                speech, speech_lens, text_ids, text_lens, self.embed_tokens, ctc_logits
            )
            out["ctc_loss"] = ctc_loss.detach()
            loss = loss + self.ctc.weight * ctc_loss
        out["loss"] = loss
        return out

    def lm_loss(
        self, inputs: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Next-token loss on the transcript positions only.

        The output layer runs on those positions alone: with a 50k-150k vocabulary its
        logits over prompt and speech positions would cost a large share of the step.
        """
        base = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
        target = labels[:, 1:]
        keep = target != IGNORE_ID
        if getattr(base.config, "final_logit_softcapping", None):
            logits = self.llm(inputs_embeds=inputs, attention_mask=mask).logits[:, :-1][keep]
        else:
            hidden = base.get_decoder()(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
            logits = base.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), target[keep])

    # ---- decoding -----------------------------------------------------------------
    @property
    def frame_seconds(self) -> float:
        """Seconds of audio per projected speech vector (before any CTC compression): the
        CTC branch's frame, which word times are counted in."""
        return 2 * HOP_LENGTH / SAMPLE_RATE * self.config.encoder_projector_ds_rate

    @torch.inference_mode()
    def generate(
        self,
        mel: torch.Tensor | None = None,
        mel_lens: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        enc_lens: torch.Tensor | None = None,
        num_beams: int = 1,
        max_new_tokens: int = 200,
        tokens_per_speech_vector: float | None = MAX_TOKENS_PER_SPEECH_VECTOR,
        engine: str = "west",
        ctc_weight: float = 0.0,
        max_tokens_per_second: float | None = None,
        return_hypotheses: bool = False,
        loop_guard: bool = True,
        step_hook: Callable[[], None] | None = None,
        context: Sequence[Sequence[str] | None] | None = None,
        hotword_bonus: float = DecodeConf.hotword_bonus,
        context_route: str = "auto",
        hotword_floor: float = DecodeConf.hotword_floor,
        hotword_gate: float = DecodeConf.hotword_gate,
        **generate_kwargs,
    ) -> list[str] | list[Hypothesis]:
        """Batched greedy or beam search; returns one transcript per utterance (with
        `return_hypotheses`, a Hypothesis: its tokens and the CTC branch's posteriors too).

        An utterance's output is capped at `tokens_per_speech_vector` tokens per speech vector
        the LLM reads (+ 8), and at `max_tokens_per_second` per second of its audio (+ 10):
        the audio cannot hold more, so a runaway decode ends there instead of at
        `max_new_tokens`. None lifts either cap. No engine returns a repetition loop
        (west.models.repetition: the search stops it, and any output is cut after its
        first copy); `loop_guard` False turns that off, to measure what it does.

        engine "west" (`west.models.search`): the prompt's shared start read once per batch,
        one prefill per utterance shared by its beams, finished utterances leave the batch,
        each stops at its own cap. "hf": transformers' `generate` (every beam prefilled, the
        batch run to the largest cap and cut after); `generate_kwargs` go to it.

        ctc_weight > 0 (engine "west", a model with a CTC branch): joint CTC / LLM decoding,
        each token scored (1 - w) x LLM + w x CTC prefix score (`west.models.ctc`).

        `step_hook`, if given, is called after the encoder and between two decoding steps
        (either engine): the caller may run other work there while this batch waits
        (west.serve.batcher).

        `context`: each utterance's hotwords (a list of words or phrases; None or [] for
        none). `context_route` (west.models.context.CONTEXT_ROUTES) says where they go: the
        prompt (a model trained with context_conf reads them before the speech), the search
        (each matched token adds `hotword_bonus`; engine "west"), both, or "auto" (the
        prompt if the model was trained so, the search if `hotword_bonus` > 0). Empty lists
        decode exactly as no lists. In joint CTC decoding the LLM gives a hotword's tokens
        at least `hotword_floor` and a match starts only where the CTC prefix score of its
        first token is at least `hotword_gate` (west.models.search.beam_search).
        """
        if engine not in ENGINES:
            raise ValueError(f"unknown decoding engine {engine!r}; known: {ENGINES}")
        if ctc_weight > 0 and (engine != "west" or self.ctc is None):
            raise ValueError(
                "joint CTC decoding (ctc_weight > 0) needs engine 'west' and a model trained "
                "with a CTC branch (a ctc_conf weight > 0 in its configuration)"
            )
        if engine == "west" and generate_kwargs:
            raise TypeError(
                f"engine 'west' takes no generate kwargs ({sorted(generate_kwargs)}); "
                "use engine='hf'"
            )
        seconds = audio_seconds(mel_lens, enc_lens)
        in_prompt, in_search = routes(context_route, self.config.context.trained, hotword_bonus)
        lists = None
        if context is not None:
            batch = len(mel_lens if mel_lens is not None else enc_lens)
            if len(context) != batch:
                raise ValueError(f"{len(context)} hotword lists for {batch} utterances")
            lists = [list(words or []) for words in context]
            if not any(lists):
                lists = None  # no hotwords anywhere: exactly the decode without them
        if lists is not None and in_search and engine != "west":
            raise ValueError(
                "hotwords in the search need engine 'west' (or context route 'prompt', for a "
                "model trained with context_conf)"
            )
        speech, speech_lens = self.speech_embeddings(mel, mel_lens, enc, enc_lens)
        # The CTC branch's logits, computed once for compression, joint scores and posteriors.
        ctc_logits = None if self.ctc is None else self.ctc.logits(speech, self.embed_tokens)
        context_ids = [self.context_ids(w) for w in lists] if lists and in_prompt else None
        llm_speech, llm_lens = self.llm_speech(speech, speech_lens, ctc_logits)
        if step_hook is not None:  # between the encoder and the LLM's prefill too
            step_hook()
        # WeST's search reads the shared prompt start once per batch; HF generate needs it per row.
        shared = engine == "west"
        inputs, mask, _ = self._assemble(
            llm_speech, llm_lens, None, True, with_prefix=not shared, context_ids=context_ids
        )
        caps = [max_new_tokens] * len(llm_lens)
        if tokens_per_speech_vector is not None:
            caps = [min(c, int(tokens_per_speech_vector * n) + 8) for c, n in zip(caps, llm_lens)]
        if max_tokens_per_second is not None:
            caps = [min(c, int(max_tokens_per_second * s) + 10) for c, s in zip(caps, seconds)]
        if engine == "west":
            ignored = ignored_settings(self.llm)
            if ignored and not self._warned_ignored:
                logger.warning("engine 'west' does not apply generation_config %s", ignored)
                self._warned_ignored = True
            scorer = None
            if ctc_weight > 0:
                scorer = self.ctc_prefix_scorer(speech, speech_lens, ctc_logits)
            bias = None
            if lists and in_search:
                writable = self.ctc_writable() if scorer is not None else None
                cache = self._hotword_forms.setdefault(writable is not None, {})
                if len(cache) > MAX_CACHED_HOTWORDS:
                    cache.clear()
                bias = ContextBias(
                    [hotword_tokens(self.tokenizer, w, writable, cache) for w in lists],
                    self.output_vocab,
                    hotword_bonus,
                    inputs.device,
                    hotword_floor,
                    hotword_gate,
                )
            prefix = self.embed_tokens(self.prefix_ids)
            ids = search(
                self.llm,
                inputs,
                mask,
                caps,
                self.stop_ids,
                num_beams,
                scorer,
                ctc_weight,
                prefix,
                loop_guard,
                step_hook,
                bias,
            )
        else:
            if step_hook is not None:
                generate_kwargs["stopping_criteria"] = StoppingCriteriaList(
                    [*generate_kwargs.get("stopping_criteria", []), _EveryStep(step_hook)]
                )
            output = self.llm.generate(
                inputs_embeds=inputs,
                attention_mask=mask,
                num_beams=num_beams,
                do_sample=False,
                max_new_tokens=max(caps),
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                **generate_kwargs,
            )
            # Each utterance keeps the tokens within its own cap (the batch ran to the largest),
            # up to its first stop token.
            ids = [until_stop(row[:cap].tolist(), self.stop_ids) for row, cap in zip(output, caps)]
        if loop_guard:
            ids = [cut_loop(row)[0] for row in ids]
        texts = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        if not return_hypotheses:
            return texts
        posteriors = None
        if self.ctc is not None:
            posteriors = ctc_logits.log_softmax(-1).float().cpu()
        return [
            Hypothesis(
                text,
                row,
                None if posteriors is None else posteriors[i, : int(speech_lens[i])],
                self.frame_seconds,
            )
            for i, (text, row) in enumerate(zip(texts, ids))
        ]

    def ctc_writable(self) -> Writable | None:
        """The tokens the CTC branch can write, when it is limited to the training
        transcripts' tokens (`ctc_conf.vocab: train`); None when it can write every token
        (full vocabulary, or spelt by characters). Built once."""
        if self.ctc is None or self.ctc.tokens is None or self.ctc.spelling is not None:
            return None
        if self._ctc_writable is None:
            self._ctc_writable = Writable.of(self.tokenizer, self.ctc.tokens.tolist())
        return self._ctc_writable

    def context_ids(self, words: Sequence[str]) -> list[int]:
        """The prompt tokens of a biasing list (context_conf's template); a list longer than
        context_conf max_tokens is an error that says so, never cut."""
        conf = self.config.context
        text = context_text(words, conf.template)
        ids = self.tokenizer(text, add_special_tokens=False).input_ids if text else []
        if len(ids) > conf.max_tokens:
            raise ValueError(
                f"a biasing list of {len(words)} entries is {len(ids)} tokens in the prompt, "
                f"more than the {conf.max_tokens} the model takes (context_conf max_tokens); "
                "give fewer, or give them to the search alone (context route 'search')"
            )
        return ids

    @torch.inference_mode()
    def ctc_texts(
        self,
        mel: torch.Tensor | None = None,
        mel_lens: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        enc_lens: torch.Tensor | None = None,
    ) -> list[str]:
        """The CTC branch's best path alone (no LLM pass: cheap), one text per utterance:
        what streaming shows while a person speaks."""
        if self.ctc is None:
            raise ValueError("this model has no CTC branch (ctc_conf weight 0)")
        speech, lens = self.speech_embeddings(mel, mel_lens, enc, enc_lens)
        return [
            self.tokenizer.decode(
                self.ctc.best_path(row[: int(n)]), skip_special_tokens=True
            ).strip()
            for row, n in zip(self.ctc.logits(speech, self.embed_tokens), lens)
        ]

    @property
    def output_vocab(self) -> int:
        """How many token ids the LLM can write: its output layer's rows, which may exceed
        its input vocabulary (read from the full shape: under ZeRO-3 the weight is a slice)."""
        return max(full_shape(self.llm.get_output_embeddings().weight)[0], self.llm_vocab)

    def ctc_prefix_scorer(
        self, speech: torch.Tensor, lens: torch.Tensor, logits: torch.Tensor | None = None
    ) -> CTCPrefixScorer:
        """CTC prefix scores of these projected frames (B, N, D), for LLM token ids
        (`logits`: the branch's logits of `speech`, when computed already)."""
        return self.ctc.prefix_scorer(
            speech, lens, self.embed_tokens, self.output_vocab, self.stop_ids, logits
        )

    # ---- optimizer ------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The trained parameters by part: encoder (its trained blocks), projector, ctc (the
        blank), lora (the LLM's adapters) and llm (its own weights, when not frozen).

        The trainer gives each part its learning rate and schedule from this, not from
        parameter names (nanoGPT's `configure_optimizers`). Empty parts are left out.
        """
        lora = lora_parameters(self.llm)
        lora_ids = {id(p) for p in lora}
        parts = {
            "encoder": [*self.encoder.parameters()]
            + ([*self.encoder_top.parameters()] if self.encoder_top is not None else []),
            "projector": [*self.projector.parameters()],
            "ctc": [*self.ctc.parameters()] if self.ctc is not None else [],
            "lora": lora,
            "llm": [p for p in self.llm.parameters() if id(p) not in lora_ids],
        }
        trained = {k: [p for p in ps if p.requires_grad] for k, ps in parts.items()}
        return {k: ps for k, ps in trained.items() if ps}

    # ---- checkpoints --------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As torch's, except that frozen parameters may be missing: WeST's checkpoints (and
        DeepSpeed's, which WeST writes without them) never hold the pretrained encoder and
        LLM weights, which come from their own files."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        missing = [k for k in result.missing_keys if k not in frozen]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"checkpoint does not fit the model: missing trained tensors {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )
        return result

    def trainable_state_dict(self, keep: bool = True) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: the trained parameters (and the CTC vocabulary), on CPU.

        Under ZeRO-3 each parameter is gathered on its own, so no process ever holds more
        than one whole tensor beyond its slice: a collective call, every process must make
        it; those with `keep=False` (all but the one that writes) get an empty dict.
        """
        state = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                with gathered([p]):
                    if keep:
                        state[name] = p.detach().to("cpu", copy=True).contiguous()
        if self.ctc is not None and self.ctc.tokens is not None and keep:
            state["ctc.tokens"] = self.ctc.tokens.cpu()
        return state


@dataclasses.dataclass
class Hypothesis:
    """One utterance's decoding result: its text, its LLM token ids (no stop token) and,
    for a model with a CTC branch, the branch's log posteriors over its own frames
    (N, C + 1), blank last, on the CPU; each frame is `frame_seconds` of audio."""

    text: str
    tokens: list[int]
    ctc_log_probs: torch.Tensor | None
    frame_seconds: float


class _EveryStep(StoppingCriteria):
    """A stopping criterion that never stops: it calls `hook` at every step of HF generate."""

    def __init__(self, hook: Callable[[], None]):
        self.hook = hook

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.hook()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def audio_seconds(mel_lens: torch.Tensor | None, enc_lens: torch.Tensor | None) -> list[float]:
    """Each utterance's audio in seconds, from its log-mel frames (10 ms) or encoder
    frames (20 ms)."""
    if mel_lens is not None:
        return [int(n) * HOP_LENGTH / SAMPLE_RATE for n in mel_lens]
    return [int(n) * 2 * HOP_LENGTH / SAMPLE_RATE for n in enc_lens]


def until_stop(tokens: list[int], stop_ids: list[int]) -> list[int]:
    """`tokens` up to (not including) the first stop token."""
    stops = set(stop_ids)
    return next((tokens[:i] for i, t in enumerate(tokens) if t in stops), tokens)
