"""west-score end to end: Kaldi output lines, missing and unknown keys, modes, filters."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from west.bin.score import main

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path, ref: str, hyp: str, *options: str, capsys) -> tuple[int, str, str]:
    (tmp_path / "ref").write_text(ref, encoding="utf-8")
    (tmp_path / "hyp").write_text(hyp, encoding="utf-8")
    rc = main([*options, str(tmp_path / "ref"), str(tmp_path / "hyp")])
    out, err = capsys.readouterr()
    return rc, out, err


def test_kaldi_lines_exactly(tmp_path, capsys):
    # u1: b->x substituted, e inserted; u2 correct. 2 errors over 6 words, 1 of 2 sentences wrong.
    rc, out, err = run(tmp_path, "u1 a b c d\nu2 e f\n", "u2 e f\nu1 a x c d e\n", capsys=capsys)
    assert rc == 0
    assert out == (
        "%WER 33.33 [ 2 / 6, 1 ins, 0 del, 1 sub ]\n"
        "%SER 50.00 [ 1 / 2 ]\n"
        "Scored 2 sentences, 0 not present in hyp.\n"
    )
    assert err == ""


def test_missing_hypothesis_counts_as_deletions_and_is_reported(tmp_path, capsys):
    rc, out, err = run(tmp_path, "u1 a b\nu2 c d e\n", "u1 a b\n", capsys=capsys)
    assert rc == 0
    assert out.splitlines() == [
        "%WER 60.00 [ 3 / 5, 0 ins, 3 del, 0 sub ] [PARTIAL]",
        "%SER 50.00 [ 1 / 2 ]",
        "Scored 2 sentences, 1 not present in hyp.",
    ]
    assert "1 reference utterance(s) have no hypothesis" in err and "u2" in err


def test_hypothesis_without_reference_is_an_error(tmp_path, capsys):
    rc, out, err = run(tmp_path, "u1 a\n", "u1 a\nstray b\n", capsys=capsys)
    assert rc == 1
    assert out == ""
    assert "'stray'" in err and str(tmp_path / "hyp") in err


def test_malformed_input_names_file_and_line(tmp_path, capsys):
    (tmp_path / "ref").write_bytes(b"u1 a\nu2 \xff\xfe\n")
    (tmp_path / "hyp").write_text("u1 a\n")
    assert main([str(tmp_path / "ref"), str(tmp_path / "hyp")]) == 1
    assert f"{tmp_path / 'ref'}:2:" in capsys.readouterr().err

    rc, _, err = run(tmp_path, "u1 a\n", "u1 a\nu1 b\n", capsys=capsys)
    assert rc == 1
    assert f"{tmp_path / 'hyp'}:2: duplicate utterance id 'u1'" in err


def test_empty_reference_counts_insertions(tmp_path, capsys):
    rc, out, _ = run(tmp_path, "u1\nu2 a b\n", "u1 x y\nu2 a b\n", "--no_normalize", capsys=capsys)
    assert rc == 0
    assert out.splitlines()[0] == "%WER 100.00 [ 2 / 2, 2 ins, 0 del, 0 sub ]"


def test_no_reference_words_gives_undefined_not_a_crash(tmp_path, capsys):
    rc, out, err = run(tmp_path, "u1\n", "u1 x y\n", "--no_normalize", capsys=capsys)
    assert rc == 0
    assert out.splitlines()[0] == "%WER undefined [ 2 / 0, 2 ins, 0 del, 0 sub ]"
    assert "WER is undefined" in err


def test_char_mode_scores_characters_after_chinese_normalisation(tmp_path, capsys):
    ref = "u1 甚至出现交易，几乎停滞的情况。\n"
    hyp = "u1 甚至 出现交易几乎停止的情况\n"  # one character wrong of 13
    rc, out, _ = run(tmp_path, ref, hyp, "--mode", "char", capsys=capsys)
    assert rc == 0
    assert out.splitlines()[0] == "%WER 7.69 [ 1 / 13, 0 ins, 0 del, 1 sub ]"


def test_mixed_mode_and_normalisation_switch(tmp_path, capsys):
    ref, hyp = "u1 我用GPU训练。\n", "u1 我用 gpu 训练\n"
    _, out, _ = run(tmp_path, ref, hyp, "--mode", "mixed", capsys=capsys)
    assert out.splitlines()[0] == "%WER 0.00 [ 0 / 5, 0 ins, 0 del, 0 sub ]"
    # Without normalisation: GPU != gpu, and the final '。' is a token of its own.
    _, out, _ = run(tmp_path, ref, hyp, "--mode", "mixed", "--no_normalize", capsys=capsys)
    assert out.splitlines()[0] == "%WER 33.33 [ 2 / 6, 0 ins, 1 del, 1 sub ]"


def test_contradictory_normaliser_options_are_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(
            tmp_path, "u1 a\n", "u1 a\n", "--no_normalize", "--normalizer", "english", capsys=capsys
        )
    assert e.value.code == 2


def test_filter_hallucinations_prints_raw_and_filtered(tmp_path, capsys):
    ref = "u1 the cat sat\nu2 hello there\n"
    hyp = "u1 the cat sat\nu2 I apologize, but there is no speech to transcribe.\n"
    rc, out, err = run(tmp_path, ref, hyp, "--filter_hallucinations", capsys=capsys)
    assert rc == 0
    # u2: 9 hypothesis words, 'there' matches, 'hello' is substituted, 7 inserted.
    assert out.splitlines() == [
        "%WER 160.00 [ 8 / 5, 7 ins, 0 del, 1 sub ]",
        "%SER 50.00 [ 1 / 2 ]",
        "Scored 2 sentences, 0 not present in hyp.",
        "%WER(filtered) 0.00 [ 0 / 3, 0 ins, 0 del, 0 sub ]",
        "%WER raw/filtered 160.00/0.00 (1 hallucination filtered)",
    ]
    assert "hallucination (refusal): u2 I apologize, but there is no speech" in err


def test_details_file_worst_first_with_gaps(tmp_path, capsys):
    details = tmp_path / "details"
    ref = "u1 a b c\nu2 a b c d e\nu3 x\n"
    hyp = "u1 a b c\nu2 a c d e f\n"  # u2: b deleted, f inserted
    run(tmp_path, ref, hyp, "--no_normalize", "--details", str(details), capsys=capsys)
    lines = details.read_text(encoding="utf-8").splitlines()
    keys = [line.split()[0] for line in lines if line.split()[1] == "#csid"]
    assert keys == ["u2", "u3", "u1"]  # 2 errors, 1 error, 0 errors
    u2 = {line.split()[1]: line.split()[2:] for line in lines if line.startswith("u2 ")}
    assert u2["ref"] == ["a", "b", "c", "d", "e", "***"]
    assert u2["hyp"] == ["a", "***", "c", "d", "e", "f"]
    assert u2["op"] == ["C", "D", "C", "C", "C", "I"]
    assert u2["#csid"] == ["4", "0", "1", "1"]
    assert "u3 #missing" in lines
    # columns line up: each token starts at the same offset in the ref/hyp/op lines
    ref_line, hyp_line, op_line = lines[0], lines[1], lines[2]
    pos = ref_line.index(" c ")
    assert hyp_line[pos : pos + 3] == " c " and op_line[pos : pos + 3] == " C "
    pos = hyp_line.index(" f")
    assert ref_line[pos : pos + 4] == " ***" and op_line[pos : pos + 2] == " I"


def test_module_entry_point_with_default_english_normaliser(tmp_path):
    (tmp_path / "ref").write_text("u1 Mr. Smith paid twenty five dollars.\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("u1 mister smith paid $25\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "west.bin.score", str(tmp_path / "ref"), str(tmp_path / "hyp")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2] == "Scored 1 sentences, 0 not present in hyp."
    assert proc.stdout.startswith("%WER 0.00 [ 0 / ")


def test_tools_wrapper_reports_errors_with_exit_status(tmp_path):
    (tmp_path / "ref").write_text("u1 a\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("u9 a\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "compute_wer.py"), "--normalizer", "none"]
        + [str(tmp_path / "ref"), str(tmp_path / "hyp")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "'u9'" in proc.stderr


def test_rates_are_rounded_like_kaldi_float32(tmp_path, capsys):
    # 1074 errors in 1541 words: 69.69500.. in double precision, 69.69499.. as Kaldi's float.
    errors, n = 1074, 1541
    assert f"{100.0 * errors / n:.2f}" == "69.70"
    ref = "".join(f"u{i} a\n" for i in range(n))
    hyp = "".join(f"u{i} {'b' if i < errors else 'a'}\n" for i in range(n))
    _, out, _ = run(tmp_path, ref, hyp, "--no_normalize", capsys=capsys)
    assert out.splitlines()[:2] == [
        f"%WER 69.69 [ {errors} / {n}, 0 ins, 0 del, {errors} sub ]",
        f"%SER 69.69 [ {errors} / {n} ]",
    ]


def test_dash_reads_standard_input(tmp_path):
    (tmp_path / "ref").write_text("u1 a b c\n", encoding="utf-8")
    for args in (["-", str(tmp_path / "ref")], [str(tmp_path / "ref"), "-"]):
        proc = subprocess.run(
            [sys.executable, "-m", "west.bin.score", "--no_normalize", *args],
            input="u1 a x c\n",
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == "%WER 33.33 [ 1 / 3, 0 ins, 0 del, 1 sub ]"
    proc = subprocess.run(
        [sys.executable, "-m", "west.bin.score", str(tmp_path / "ref"), "-"],
        input=b"u1 a\nu1 b\n",
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert b"<stdin>:2: duplicate utterance id 'u1'" in proc.stderr


def test_both_files_from_standard_input_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["-", "-"])
    assert e.value.code == 2
    assert "cannot both be '-'" in capsys.readouterr().err


def test_closed_stdout_ends_quietly_without_a_traceback(tmp_path):
    # `west-score ref hyp | head -0`: the reader is gone before anything is written.
    (tmp_path / "ref").write_text("u1 a b\n", encoding="utf-8")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "west.bin.score", str(tmp_path / "ref"), str(tmp_path / "ref")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_tools_wrapper_runs_from_a_checkout_without_install(tmp_path):
    # python -S skips site-packages, so no installed `west` (nor any other package) is found.
    (tmp_path / "ref").write_text("u1 a b c\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("u1 a c\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-S", str(REPO / "tools" / "compute_wer.py"), "--normalizer", "none"]
        + [str(tmp_path / "ref"), str(tmp_path / "hyp")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "%WER 33.33 [ 1 / 3, 0 ins, 1 del, 0 sub ]"
