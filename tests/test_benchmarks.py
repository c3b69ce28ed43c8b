"""The benchmark harness: alternating timing, reports, and tiny end-to-end runs of the benchmarks."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from experiments.benchmarks import (
    compile_time, corpus_scale, decode_speed, evaluation, gelu, gpu_target, mixed_precision,
    nanogpt_fidelity, parallel_scan, recurrent, recurrent_contenders, step_roofline, transformer,
)
from experiments.benchmarks.environment import matmul_precision_for_backend
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating

REPO = Path(__file__).resolve().parents[1]


def test_measure_alternating_rotates_order_and_keeps_first_call_apart():
    calls = []
    candidates = [Candidate(name, lambda name=name: calls.append(name), sync=lambda _: None) for name in "abc"]
    timings = measure_alternating(candidates, repeats=3, warmup=1)
    # first calls, one warm-up round, then rounds starting at a, b, c in turn
    assert calls == list("abc") + list("abc") + list("abc") + list("bca") + list("cab")
    assert list(timings) == ["a", "b", "c"]
    for timing in timings.values():
        assert len(timing.samples) == 3
        summary = timing.summary()
        assert summary["q1_s"] <= summary["median_s"] <= summary["q3_s"]
        assert summary["first_call_s"] >= 0


def test_measure_alternating_rejects_bad_arguments():
    run = Candidate("a", lambda: None, sync=lambda _: None)
    with pytest.raises(ValueError, match="repeats"):
        measure_alternating([run], repeats=0)
    with pytest.raises(ValueError, match="unique"):
        measure_alternating([run, run], repeats=1)


def test_quick_recurrent_benchmark_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "recurrent.json"
    recurrent.main(["--quick", "--cells", "lstm", "--shapes", "2x3x4x5", "--peers", "flax,torch",
                    "--repeats", "1", "--default-malloc", "--out", str(out)])
    report = json.loads(out.read_text())
    environment = report["environment"]
    assert environment["backend"] and environment["versions"]["jax"] and environment["versions"]["flax"]
    assert "load_average" in environment and "xla_flags" in environment
    peers = report["settings"]["peers"]
    assert "flax" in peers
    rows = report["rows"]
    assert [row["mode"] for row in rows] == ["train", "forward"]
    for row in rows:
        assert row["cell"] == "lstm" and row["shape"]["hidden_size"] == 5 and row["tokens_per_step"] == 6
        assert set(row["results"]) == {"seqjax", *peers}
        for figures in row["results"].values():
            assert figures["median_s"] > 0 and figures["tokens_per_s"] > 0
            assert figures["first_call_s"] > 0 and len(figures["samples_s"]) == 1
        assert set(row["ratios"]) == set(peers)
    table = capsys.readouterr().out
    assert "| lstm | 5 | train |" in table and "vs flax" in table


def test_report_on_disk_keeps_the_rows_of_a_run_cut_short(tmp_path):
    path = tmp_path / "sub" / "report.json"
    report = Report(str(path), "demo", {"backend": "cpu"}, {"repeats": 1})
    assert json.loads(path.read_text())["rows"] == []
    report.add_rows([{"row": 1}])
    on_disk = json.loads(path.read_text())  # as a run stopped here would leave it
    assert on_disk["rows"] == [{"row": 1}] and on_disk["complete"] is False
    report.add_rows([{"row": 2}])
    content = report.finish()
    assert json.loads(path.read_text()) == content
    assert content["complete"] is True and "load_average_after" in content["environment"]
    assert [row["row"] for row in content["rows"]] == [1, 2]


def test_quick_transformer_benchmark_times_seqjax_beside_torch(tmp_path):
    """Run as users run it, in a fresh process: the malloc setting must come before JAX starts
    (a late call leaves XLA's threads page-faulting every step, and says so)."""
    out = tmp_path / "transformer.json"
    torch_missing = transformer.torch_device() is None
    result = subprocess.run(
        [sys.executable, "-W", "error:keep_freed_memory:RuntimeWarning", "-m",
         "experiments.benchmarks.transformer",
         "--quick", "--repeats", "1", "--idle-gate", "1.0", "--out", str(out)]
        + (["--no-torch"] if torch_missing else []),
        cwd=REPO, capture_output=True, text=True, env=os.environ | {"JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["complete"] and report["settings"]["sizes"] == ["tiny"]
    assert report["settings"]["malloc_keeps_freed_memory"] is True
    assert report["settings"]["idle_gate"] == 1.0
    rows = report["rows"]
    assert [row["mode"] for row in rows] == ["train", "forward"]
    contenders = {"seqjax"} if torch_missing else {"seqjax", "torch"}
    for row in rows:
        size = (row["num_layers"], row["num_heads"], row["width"], row["batch"], row["length"])
        assert size == transformer.SIZES["tiny"]
        assert row["attention_runs"] == "not cudnn"  # "auto" in float32 keeps the equation
        assert len(row["cpu_busy_before_rounds"]) == 1  # the gate measured before the round
        assert set(row["results"]) == contenders
        for figures in row["results"].values():
            assert figures["median_s"] > 0 and figures["first_call_s"] > 0
            assert figures["tokens_per_s"] == pytest.approx(2 * 8 / figures["median_s"])
        if not torch_missing:
            ratio = row["results"]["torch"]["median_s"] / row["results"]["seqjax"]["median_s"]
            assert row["ratios"]["torch"] == pytest.approx(ratio)
    assert "| tiny | 2/2/16 | 2 x 8 | train |" in result.stdout


@pytest.mark.skipif(platform.system() != "Linux", reason="a glibc malloc setting")
def test_keeping_freed_memory_after_jax_started_warns_and_says_it_did_not_take():
    program = ("import jax, warnings; jax.devices()\n"
               "from experiments.freed_memory import keep_freed_memory\n"
               "with warnings.catch_warnings(record=True) as caught:\n"
               "    warnings.simplefilter('always')\n"
               "    print(keep_freed_memory(), [str(w.message) for w in caught])")
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True,
                            text=True, env=os.environ | {"JAX_PLATFORMS": "cpu"}, check=True)
    assert result.stdout.startswith("False") and "call it before any JAX" in result.stdout


@pytest.mark.filterwarnings("ignore:keep_freed_memory:RuntimeWarning")  # tested above
def test_quick_decode_benchmark_slides_a_ring_buffer_against_nanogpts_crop(tmp_path):
    """In this process JAX has started, so the benchmark's malloc setting comes too late (it
    warns, see above), and its report says so."""
    out = tmp_path / "decode.json"
    jax.devices()  # start JAX's backend, whichever test ran before
    report = decode_speed.main(["--quick", "--context-length", "8", "--num-tokens", "20",
                                "--positional", "rotary", "--recurrent", "min_gru",
                                "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    settings = report["settings"]
    assert settings["malloc_keeps_freed_memory"] is False
    assert settings["refill_length"] is None and settings["uncached_refill_length"] == 7
    (row,) = report["rows"]
    assert row["num_tokens"] == 20 and row["results"]["cached"]["tokens_per_s"] > 0
    assert row["results"]["min_gru"]["tokens_per_s"] > 0  # the recurrent model beside it
    matched = settings["recurrent"]["min_gru"]["non_embedding_parameters"]
    assert abs(matched / settings["transformer_non_embedding_parameters"] - 1) < 0.05


def test_unknown_transformer_size_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown sizes.*nanogpt_cpu"):
        transformer.main(["--sizes", "huge", "--default-malloc", "--out", str(tmp_path / "x.json")])


def test_matmul_precision_is_left_alone_on_a_cpu():
    if recurrent.jax.default_backend() != "cpu":
        pytest.skip("checks the CPU path")
    assert matmul_precision_for_backend("tf32") == {"mode": "float32 (CPU)"}


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="BxTxIxH"):
        recurrent.parse_shape("32x128", vocab=65)


def _in_git_checkout():
    probe = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the project's git history")
def test_baseline_revision_is_timed_beside_seqjax(tmp_path):
    out = tmp_path / "ab.json"
    recurrent.main(["--quick", "--cells", "gru", "--shapes", "2x3x4x5", "--peers", "", "--modes", "train",
                    "--baseline", "HEAD", "--gradient-chunk", "2", "--repeats", "1", "--default-malloc",
                    "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["settings"]["baseline"] == "HEAD" and report["settings"]["gradient_chunk"] == 2
    (row,) = report["rows"]
    assert set(row["results"]) == {"seqjax", "baseline"} and set(row["ratios"]) == {"baseline"}


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the project's git history")
def test_unknown_baseline_revision_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read seqjax/recurrent/fused_bptt.py or .* at revision 'no-such-rev'"):
        recurrent.main(["--quick", "--baseline", "no-such-rev", "--default-malloc",
                        "--out", str(tmp_path / "x.json")])


def test_quick_recurrent_benchmark_in_bfloat16_runs_every_peer(tmp_path):
    out = tmp_path / "recurrent_bfloat16.json"
    recurrent.main(["--quick", "--cells", "elman", "--shapes", "2x3x4x5", "--modes", "train",
                    "--peers", "flax,torch,scan", "--dtype", "bfloat16", "--repeats", "1",
                    "--default-malloc", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["settings"]["dtype"] == "bfloat16"
    (row,) = report["rows"]
    assert set(row["results"]) == {"seqjax", *report["settings"]["peers"]}
    with pytest.raises(SystemExit):
        recurrent.parse_args(["--baseline", "HEAD", "--dtype", "bfloat16"])


def test_compile_time_profile_splits_the_first_call_and_records_a_failing_variant(tmp_path, capsys):
    out = tmp_path / "compile_time.json"
    compile_time.main(["--models", "gru:2x3x4x5", "--contenders", "seqjax", "--top", "8",
                       "--variants", ";--xla_no_such_flag=1", "--repeats", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["complete"] and report["settings"]["compilation_cache"] is False
    assert report["environment"]["backend"] == jax.default_backend()  # from the measuring process
    measured, failed = report["rows"]
    assert measured["variant"] == "" and min(measured["trace_s"], measured["lower_s"], measured["compile_s"]) > 0
    assert len(measured["total_s_runs"]) == 2 and measured["total_s"] == measured["total_s_runs"][0]
    assert measured["hlo"]["while"] >= 2 and measured["hlo"]["instructions"] > measured["hlo"]["fusion"] > 0
    by_self, by_inclusive = measured["compiler_scopes"]["self"], measured["compiler_scopes"]["inclusive"]
    assert 0 < len(by_self) <= 8 and 0 < len(by_inclusive) <= 8
    assert all(0 <= s["self_ms"] <= s["inclusive_ms"] and not s["scope"].startswith("$") for s in by_self)
    assert [s["self_ms"] for s in by_self] == sorted((s["self_ms"] for s in by_self), reverse=True)
    (whole,) = [s for s in by_inclusive if s["scope"] == "backend_compile_and_load"]  # JAX's own
    assert whole["self_ms"] is None and 0 < whole["inclusive_ms"] <= 1e3 * measured["compile_s"]
    assert any(s["self_ms"] is not None and s["self_ms"] < 0.5 * s["inclusive_ms"] for s in by_inclusive)
    assert "xla_no_such_flag" in failed["error"] and failed["variant"] == "--xla_no_such_flag=1"
    assert failed["total_s_runs"] == []
    table = capsys.readouterr().out
    assert "| gru:2x3x4x5 | seqjax | train | default |" in table and "error: " in table


def test_hlo_size_counts_distinct_products_and_custom_calls():
    text = """HloModule m
ENTRY %main (a: f32[4,5], b: f32[5,6]) -> f32[4,6] {
  %a = f32[4,5]{1,0} parameter(0)
  %b = f32[5,6]{1,0} parameter(1)
  %c = f32[6,5]{1,0} parameter(2)
  %d1 = f32[4,6]{1,0} dot(%a, %b), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="x"}
  %d2 = f32[4,6]{1,0} dot(%a, %b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %d3 = f32[4,6]{1,0} dot(%a, %c), lhs_contracting_dims={1}, rhs_contracting_dims={1}
  %e = bf16[4,5]{1,0} parameter(3)
  %f16 = bf16[5,6]{1,0} parameter(4)
  %d4 = f32[4,6]{1,0} dot(%e, %f16), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %g = (f32[4,6]{1,0}, s8[0]{0}) custom-call(%a, %b), custom_call_target="__cublas$gemm"
  %f = f32[4,6]{1,0} fusion(%a, %b), kind=kCustom, backend_config={"fusion_backend_config":{"kind":"__triton_gemm"}}
  %n = f32[4,6]{1,0} fusion(%a, %b), kind=kCustom, backend_config={"fusion_backend_config":{"kind":"__triton_nested_gemm_fusion"}}
  %s = f32[4,6]{1,0} fusion(%a, %b), kind=kCustom, backend_config={"fusion_backend_config":{"kind":"__custom_fusion"}}
  ROOT %t = f32[4,6]{1,0} get-tuple-element(%g), index=0
}"""
    size = compile_time.hlo_size(text)
    assert (size["dot"], size["distinct_dots"], size["fusion"]) == (4, 3, 3)
    assert size["custom_call_targets"] == {"__cublas$gemm": 1} and size["triton_gemm_fusions"] == 2
    assert size["dot_operand_dtypes"] == {"f32 x f32": 3, "bf16 x bf16": 1}
    assert size["instructions"] == 14


def test_compile_time_compiles_from_abstract_arguments_placed_on_a_device():
    candidate = compile_time.build_candidate("lstm:2x3x4x5", "seqjax", "train", "float32")
    device = jax.devices()[0]
    placed = gpu_target.abstract_on(device)(candidate.arguments())
    leaves = jax.tree.leaves(placed)
    assert leaves and all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)
    assert {leaf.sharding.device_set == {device} for leaf in leaves} == {True}
    assert [l.shape for l in leaves] == [jax.numpy.shape(a) for a in jax.tree.leaves(candidate.arguments())]
    placings = []
    place = lambda arguments: placings.append(1) or gpu_target.abstract_on(device)(arguments)
    measured = compile_time.measure(candidate, top=3, profile=False, place=place)
    assert placings == [1]
    assert measured["compile_s"] > 0 and measured["hlo"]["while"] >= 2
    with pytest.raises(ValueError, match="not a jitted JAX program"):
        Candidate("torch", lambda: None).trace()


def test_hoisting_the_input_projection_changes_the_program_not_the_loss():
    shape = recurrent.parse_shape("2x3x4x5", 65)
    built = {}
    for hoist in ("on", "off"):
        settings = recurrent.parse_args(["--hoist-input-projection", hoist])
        data = recurrent_contenders.random_batch(shape)
        built[hoist] = recurrent.build("seqjax", "gru", shape, data, settings)["forward"]
    on, off = (built[h] for h in ("on", "off"))
    assert on.trace().lower().as_text() != off.trace().lower().as_text()
    assert abs(float(on.run()) - float(off.run())) < 1e-5


@pytest.mark.skipif(gpu_target.cuda_plugin_installed(), reason="JAX's CUDA plugin is installed here")
def test_compile_time_gpu_target_without_the_cuda_plugin_says_how_to_get_it(capsys):
    target = str(REPO / "experiments" / "benchmarks" / "gpu_targets" / "h200.txtpb")
    with pytest.raises(SystemExit) as exit_:
        compile_time.parse_args(["--gpu-target", target])
    assert exit_.value.code != 0 and 'pip install "jax[cuda13]"' in capsys.readouterr().err
    with pytest.raises(RuntimeError, match=r'pip install "jax\[cuda13\]"'):
        gpu_target.compile_only_gpu(target)


@pytest.mark.skipif(not gpu_target.cuda_plugin_installed(), reason="needs JAX's CUDA plugin (no GPU needed)")
def test_compile_time_compiles_for_the_described_gpu_without_one(tmp_path):
    target = REPO / "experiments" / "benchmarks" / "gpu_targets" / "h200.txtpb"
    out = tmp_path / "compile_time.json"
    compile_time.main(["--models", "lstm:2x3x4x8", "--contenders", "seqjax", "--no-profile",
                       "--gpu-target", str(target), "--out", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert "error" not in row, row.get("error")
    assert row["compiled_for"].startswith("NVIDIA H200 (compile-only, jax-cuda")
    assert row["hlo"]["triton_gemm_fusions"] + row["hlo"]["custom-call"] > 0  # GPU products


def test_compile_time_names_a_missing_gpu_target(capsys):
    with pytest.raises(SystemExit) as exit_:
        compile_time.parse_args(["--gpu-target", "no/such/target.txtpb"])
    assert exit_.value.code != 0 and "no such file" in capsys.readouterr().err
    target = str(REPO / "experiments" / "benchmarks" / "gpu_targets" / "h200.txtpb")
    with pytest.raises(SystemExit) as exit_:  # cuDNN's attention, which bfloat16 takes on the card
        compile_time.parse_args(["--models", "gpt:tiny", "--dtype", "bfloat16", "--gpu-target", target])
    assert exit_.value.code != 0 and "bfloat16 GPT" in capsys.readouterr().err


def test_compile_time_names_what_a_model_is_when_it_is_not_one():
    with pytest.raises(SystemExit):
        compile_time.parse_args(["--models", "gpt2:tiny"])
    with pytest.raises(SystemExit):
        compile_time.parse_args(["--models", "lstm:2x3"])


def test_quick_parallel_scan_benchmark_writes_every_row_with_its_memory(tmp_path, capsys):
    out, figure = tmp_path / "parallel_scan.json", tmp_path / "parallel_scan.png"
    parallel_scan.main(["--quick", "--lengths", "4", "--cells", "min_gru",
                        "--backends", "sequential,auto", "--references", "gru,transformer",
                        "--transformer-max-length", "2", "--default-malloc",
                        "--out", str(out), "--figure", str(figure)])
    report = json.loads(out.read_text())
    assert report["complete"] and report["environment"]["versions"]["jax"]
    assert report["environment"]["processor"] and "command" in report["settings"]
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["min_gru/sequential", "min_gru/auto", "gru/fused", "transformer/matched"]
    assert "O(T^2)" in rows["transformer/matched"]["skipped"]
    assert "results" not in rows["transformer/matched"]
    for name in ("min_gru/sequential", "min_gru/auto", "gru/fused"):
        row = rows[name]
        assert row["length"] == 4 and row["tokens"] == row["batch"] * 4 and row["parameters"] > 0
        assert 0 < row["results"]["per_token_s"] <= row["results"]["median_s"]
        assert row["results"]["q1_s"] <= row["results"]["median_s"] <= row["results"]["q3_s"]
        memory = row["memory"]
        assert memory["peak_bytes"] >= memory["argument"] > 0 and memory["temp"] >= 0
    auto = rows["min_gru/auto"]
    assert auto["resolved_backend"] in ("sequential", "associative", "chunked")
    assert rows["gru/fused"]["ratio_vs_fused_gru"] == 1.0
    assert figure.stat().st_size > 0
    assert "| min_gru/auto | 8 |" in capsys.readouterr().out


def tiny_transformer_config_file(tmp_path):
    """A config file of a 1-layer Transformer on a tiny corpus, whole-split evaluation."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 60)
    config_file = tmp_path / "tiny_transformer.py"
    config_file.write_text(
        "from experiments.configs.defaults import transformer_model\n"
        "from tests.training_configs import tiny_config\n\n\n"
        "def get_config():\n"
        f"    config = tiny_config({str(corpus)!r}, eval_batches=0, batch_size=2, seq_len=8)\n"
        "    config.model = transformer_model(num_layers=1, num_heads=2, width=16)\n"
        "    return config\n")
    return config_file


def test_quick_evaluation_benchmark_times_every_way_to_the_same_loss(tmp_path, capsys):
    config_file = tiny_transformer_config_file(tmp_path)
    out = tmp_path / "evaluation.json"
    evaluation.main(["--config", str(config_file), "--tokens-per-pass", "16,48",
                     "--repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["complete"] and report["environment"]["cpu"] is not None
    names = [row["name"] for row in report["rows"]]
    assert names == ["per window (before)", "one program, 1 window(s) per pass",
                     "one program, 3 window(s) per pass"]
    losses = list(report["settings"]["losses"].values())
    assert max(losses) - min(losses) <= 1e-6 * losses[0]
    assert report["rows"][0]["speed_up"] == 1.0
    assert "| one program, 3 window(s) per pass |" in capsys.readouterr().out


def test_quick_gelu_benchmark_times_both_forms_of_the_same_function(tmp_path, capsys):
    out = tmp_path / "gelu.json"
    gelu.main(["--shape", "8,16", "--calls", "2", "--repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["complete"] and report["settings"]["shape"] == [8, 16]
    assert [row["name"] for row in report["rows"]] == [
        "erf (seqjax), forward", "erf (seqjax), gradient",
        "erfc (jax.nn.gelu), forward", "erfc (jax.nn.gelu), gradient"]
    assert report["largest_difference"] <= 2e-6  # x ~ N(0, 9): float32 rounding apart
    assert "| erf (seqjax), gradient |" in capsys.readouterr().out


def test_quick_mixed_precision_benchmark_times_both_dtypes_from_the_same_start(tmp_path, capsys):
    config_file = tiny_transformer_config_file(tmp_path)
    out = tmp_path / "mixed_precision.json"
    mixed_precision.main(["--config", str(config_file), "--steps", "2", "--repeats", "1",
                          "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["complete"] and report["environment"]["cpu"] is not None
    assert [row["name"] for row in report["rows"]] == [
        "steps, float32", "steps, bfloat16", "evaluation, float32", "evaluation, bfloat16"]
    products = report["settings"]["dot_operand_dtypes"]
    assert set(products["float32"]) == {"f32 x f32"} and "bf16 x bf16" in products["bfloat16"]
    losses = report["settings"]["val_loss"]  # the same parameters: bfloat16 rounding apart
    assert losses["float32"] != losses["bfloat16"]
    assert abs(losses["float32"] - losses["bfloat16"]) < 0.02 * losses["float32"]
    assert "| evaluation, bfloat16 |" in capsys.readouterr().out


def test_corpus_scale_writes_a_corpus_of_the_size_asked(tmp_path):
    path = corpus_scale.write_corpus(tmp_path / "corpus.txt", 50_000)
    text = path.read_text(encoding="utf-8")
    assert len(text) == 50_000 and text.startswith("# ==== ")


def test_step_roofline_counts_the_work_and_the_ceilings(tmp_path, monkeypatch):
    out = tmp_path / "roofline.json"
    monkeypatch.setattr(sys, "argv", ["step_roofline", "--size=tiny", "--repeats=2",
                                      "--large_product=64", "--dtypes=float32", f"--out={out}"])
    step_roofline.main()
    report = json.loads(out.read_text())
    for numbers in report["dtypes"].values():
        # a training step is about 3 forward passes of arithmetic (forward, then backward)
        assert 2 < numbers["train_step"]["gflop"] / numbers["forward"]["gflop"] < 4
        assert numbers["large_product_gflop_per_s"] > 0 and numbers["train_step"]["median_ms"] > 0
    assert report["run"]["num_evaluations"] == 8  # every 250 of nanogpt_cpu.py's 2,000 steps


def test_fidelity_differences_pair_the_seeds_each_arm_shares():
    losses = {"nanogpt": [1.90, 1.91, 1.92], "nanogpt_on_seqjax_batches": [1.91, 1.92, 1.93],
              "seqjax_from_nanogpt_init": [1.90, 1.90], "seqjax": [1.93, 1.95, 1.94]}
    arms = {name: {str(k): {"val_loss": v} for k, v in enumerate(values)}
            for name, values in losses.items()}
    stats, pairs = nanogpt_fidelity.compare(arms)
    assert stats["seqjax"]["mean"] == pytest.approx(1.94)
    batches = pairs["nanogpt_on_seqjax_batches - nanogpt"]
    assert batches["difference_of_means"] == pytest.approx(0.01)
    assert batches["per_seed"]["mean"] == pytest.approx(0.01)
    assert batches["per_seed"]["stdev"] < 1e-12
    paired = pairs["seqjax - seqjax_from_nanogpt_init"]["per_seed"]  # seeds 0 and 1 only
    assert paired["n"] == 2 and paired["mean"] == pytest.approx(0.04)
