"""The figures of one bench_decoding.py run as a short table for a terminal or a README."""

from __future__ import annotations

from pathlib import Path


def format_table(r: dict) -> str:
    """The short human-readable summary: throughputs and WeST / reference ratios."""
    m, d, beam = r["machine"], r["data"], r["config"]["beams"]
    train, decode = r["train"], r["decode"]
    models = "tiny random models" if r["models"]["tiny_random"] else "real models"
    lines = [
        f"WeST benchmark: {models} ({Path(r['models']['whisper']).name} + "
        f"{Path(r['models']['llm']).name}), {d['utterances']} utts / {d['audio_s']:.1f} s audio",
        f"machine: {m['cpus']} CPUs, {m['torch_threads']} torch threads, load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
        f"run took {r['wall_s']:.0f} s",
        "",
        f"training: batch {train['reference']['batch_size']}, {train['reference']['steps']} "
        "steps per path "
        "(interleaved), time = batch making + forward + backward + AdamW",
        f"{'path':<26}{'samples/s':>10}{'tokens/s':>10}{'x ref':>8}"
        f"{'FLOPs exec/need':>16}{'peak RSS MB':>13}",
    ]
    names = {
        "reference": "ref (30 s pad, 512 seq)",
        "west": "WeST (var len, grouped)",
        "west_cached": "WeST + encoder cache",
    }
    base = train["reference"]["samples_per_s"]
    for k, label in names.items():
        t = train[k]
        lines.append(
            f"{label:<26}{t['samples_per_s']:>10.3f}{t['tokens_per_s']:>10.1f}"
            f"{t['samples_per_s'] / base:>8.2f}{t['flops_ratio']:>16.2f}{t['peak_rss_mb']:>13.0f}"
        )
    c = r["cache"]
    lines += [
        f"encoder cache: first pass {c['build_s']:.1f} s for {c['utterances']} utts, "
        f"{c['megabytes']:.1f} MB ({c['dtype']}); |loss cached - uncached| = "
        f"{c['cached_loss_abs_diff']:.2e}",
        "",
        f"decoding: {decode['west_greedy']['utterances']} utts, max_new_tokens "
        f"{r['config']['max_new_tokens']}, WeST batch {r['config']['decode_batch_size']}, "
        "time = features + encoder + generate",
        f"{'path':<26}{'utt/s':>10}{'RTF':>10}{'x ref':>8}{'WER %':>8}"
        f"{'FLOPs exec/need':>16}{'peak RSS MB':>13}",
    ]
    labels = {
        "reference_greedy": ("ref greedy (b=1, 30 s)", "reference_greedy"),
        "west_greedy": ("WeST greedy (batched)", "reference_greedy"),
        "west_greedy_batch1": ("WeST greedy (b=1)", "reference_greedy"),
        f"reference_beam{beam}": (f"ref beam {beam} (b=1, 30 s)", f"reference_beam{beam}"),
        f"west_beam{beam}": (f"WeST beam {beam} (batched)", f"reference_beam{beam}"),
        f"west_beam{beam}_batch1": (f"WeST beam {beam} (b=1)", f"reference_beam{beam}"),
    }
    for k, (label, ref) in labels.items():
        if k not in decode:
            continue
        x = decode[k]
        wer = "n/a" if x["wer"] is None else f"{x['wer']:.1f}"
        lines.append(
            f"{label:<26}{x['utt_per_s']:>10.3f}{x['rtf']:>10.3f}"
            f"{x['utt_per_s'] / decode[ref]['utt_per_s']:>8.2f}{wer:>8}"
            f"{x['flops_ratio']:>16.2f}{x['peak_rss_mb']:>13.0f}"
        )
    same = decode["identical"]
    parts = [f"{k.replace('_', ' ')} {v['identical']}/{v['of']}" for k, v in same.items()]
    lines += [
        "identical hypotheses: " + "; ".join(parts),
        "ref = the 2024 reference's data path and search (WeST 2024, wenet-e2e/west);",
        "tokens/s counts real content only (prompt + speech + transcript), the same for all paths;",
        "FLOPs need = that content's floor (encoder on real frames, no padding, one prefill per",
        "utterance, the shared prompt start once); peak RSS includes the models (sampled while",
        "each path ran)",
        "",
        f"train_speedup {r['train_speedup']:.2f}  train_speedup_cached "
        f"{r['train_speedup_cached']:.2f}  decode_speedup_greedy "
        f"{r['decode_speedup_greedy']:.2f}  decode_speedup_beam{beam} "
        f"{r[f'decode_speedup_beam{beam}']:.2f}  (WeST / reference throughput)",
    ]
    return "\n".join(lines)
