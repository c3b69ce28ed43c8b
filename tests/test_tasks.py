"""Generated tasks: pure functions of the seed, labels right on hand-checked examples,
padding and splits as documented, chance baselines and objectives against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.errors import ConfigError
from seqjax.tasks import TASKS, TaskBatch, get_task
from seqjax.tasks.baselines import chance_baseline
from seqjax.tasks.classification import count_label, is_balanced, parity_label
from seqjax.tasks.objectives import exact_match, seq2seq_objective, tagging_objective
from seqjax.tasks.tagging import bracket_depth_tags, seen_before_tags
from seqjax.tasks.translation import is_held_out, number_tokens, spell_number
from seqjax.tasks.vocabulary import EOS, PAD, Vocabulary

# Small tasks keep the batches quick to check one example at a time.
SMALL_OPTIONS = {"number_words": {"max_value": 9999}}


def small_task(name):
    return get_task(name, **SMALL_OPTIONS.get(name, {}))


def assert_batches_equal(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", list(TASKS))
def test_batches_are_pure_functions_of_seed_and_step(name):
    task = small_task(name)
    assert_batches_equal(task.training_batch(3, 7, 16), task.training_batch(3, 7, 16))
    assert_batches_equal(task.held_out_set(3, 16), task.held_out_set(3, 16))
    other_step, other_seed = task.training_batch(3, 8, 16), task.training_batch(4, 7, 16)
    for other in (other_step, other_seed, task.held_out_set(3, 16)):
        assert not np.array_equal(task.training_batch(3, 7, 16).inputs, other.inputs)


@pytest.mark.parametrize("name", list(TASKS))
def test_shapes_are_fixed_and_padding_is_zero(name):
    task = small_task(name)
    batch = task.training_batch(0, 0, 32)
    assert isinstance(batch, TaskBatch)
    assert batch.inputs.shape[:2] == (32, task.max_input_length)
    lengths = batch.input_lengths
    assert lengths.min() >= 1 and lengths.max() <= task.max_input_length
    padding = np.arange(task.max_input_length)[None, :] >= lengths[:, None]
    assert np.all(batch.inputs[padding] == 0)
    if task.input_vocabulary is not None:
        assert np.all(batch.inputs[~padding] >= task.input_vocabulary.num_specials)
    if task.kind == "seq2seq":
        assert batch.targets.shape == (32, task.max_target_length)
        rows = np.arange(32)
        assert np.all(batch.targets[rows, batch.target_lengths - 1] == EOS)


def test_hand_checked_classification_labels():
    assert parity_label("1101") == 1 and parity_label("1001") == 0 and parity_label("0") == 0
    assert count_label("abca") == 2 and count_label("bcd") == 0
    for string in ["()", "(())", "()()", "(()())"]:
        assert is_balanced(string), string
    for string in [")(", "(()", "())(", "())(()", "((", "(()))("]:
        assert not is_balanced(string), string


def test_hand_checked_tags():
    assert seen_before_tags("abca") == [0, 0, 0, 1]
    assert seen_before_tags("aab") == [0, 1, 0]
    assert bracket_depth_tags("(()(") == [1, 2, 1, 2]
    assert bracket_depth_tags("()()") == [1, 0, 1, 0]


@pytest.mark.parametrize("number, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty-two"),
    (100, "one hundred"), (304, "three hundred and four"), (999, "nine hundred and ninety-nine"),
    (1000, "one thousand"), (1004, "one thousand and four"),
    (1304, "one thousand three hundred and four"), (20_000, "twenty thousand"),
    (999_999, "nine hundred and ninety-nine thousand nine hundred and ninety-nine"),
])
def test_spell_number(number, words):
    assert spell_number(number) == words


def test_number_tokens_split_hyphens():
    assert number_tokens(304) == ["three", "hundred", "and", "four"]
    assert number_tokens(21) == ["twenty", "one"]


def decoded(vocabulary, ids):
    return "".join(vocabulary.decode(ids))


@pytest.mark.parametrize("name, rule", [
    ("parity", parity_label), ("counting", count_label), ("balanced_parentheses", is_balanced),
])
def test_generated_classification_labels_follow_the_rule(name, rule):
    task = small_task(name)
    batch = task.training_batch(0, 0, 200)
    for ids, label in zip(batch.inputs, batch.targets):
        assert int(rule(decoded(task.input_vocabulary, ids))) == label


def test_balanced_parentheses_negatives_include_equal_counts():
    # Negatives with as many "(" as ")" can only be told apart by reading the order.
    task = small_task("balanced_parentheses")
    batch = task.training_batch(0, 0, 400)
    strings = [decoded(task.input_vocabulary, ids) for ids in batch.inputs]
    equal_count_negatives = [
        s for s, label in zip(strings, batch.targets) if not label and s.count("(") == s.count(")")
    ]
    assert 0.3 < batch.targets.mean() < 0.7 and len(equal_count_negatives) > 50


@pytest.mark.parametrize("name, rule", [
    ("seen_before", seen_before_tags), ("bracket_depth", bracket_depth_tags),
])
def test_generated_tags_follow_the_rule(name, rule):
    task = small_task(name)
    batch = task.training_batch(0, 0, 100)
    for ids, tags, length in zip(batch.inputs, batch.targets, batch.target_lengths):
        assert list(tags[:length]) == rule(decoded(task.input_vocabulary, ids))
        assert not tags[length:].any()


def test_bracket_depth_stays_in_range():
    task = get_task("bracket_depth", max_length=40, max_depth=3)
    batch = task.training_batch(0, 0, 100)
    assert batch.targets.max() == 3 and task.num_outputs == 4


@pytest.mark.parametrize("name, transform", [
    ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s))),
])
def test_generated_translations_follow_the_rule(name, transform):
    task = small_task(name)
    batch = task.training_batch(0, 0, 100)
    for source, target in zip(batch.inputs, batch.targets):
        assert decoded(task.output_vocabulary, target) == transform(
            decoded(task.input_vocabulary, source)
        )


def test_number_words_pairs_and_held_out_split():
    task = small_task("number_words")
    train, held_out = task.training_batch(0, 0, 500), task.held_out_set(0, 200)
    numbers = {}
    for name, batch in (("train", train), ("held_out", held_out)):
        numbers[name] = [int(decoded(task.output_vocabulary, t)) for t in batch.targets]
        for source, number in zip(batch.inputs, numbers[name]):
            assert task.input_vocabulary.decode(source) == number_tokens(number)
    assert not is_held_out(numbers["train"], 0.1).any()
    assert is_held_out(numbers["held_out"], 0.1).all() and min(numbers["held_out"]) >= 100
    # Every word is taught in training; held-out numbers are new compositions of them.
    train_words = {w for n in numbers["train"] for w in number_tokens(n)}
    assert train_words == set(task.input_vocabulary.tokens[1:])


def test_noisy_sine_target_continues_the_wave():
    # Without noise, x_{t+1} = 2 cos(w) x_t - x_{t-1}: the target is the wave's next value.
    task = get_task("noisy_sine", min_length=4, max_length=8, noise=0.0)
    batch = task.training_batch(0, 0, 50)
    for values, length, target in zip(batch.inputs[..., 0], batch.input_lengths, batch.targets):
        x = values.astype(np.float64)
        if abs(x[length - 2]) < 0.2:
            continue
        two_cos = (x[length - 1] + x[length - 3]) / x[length - 2]
        np.testing.assert_allclose(two_cos * x[length - 1] - x[length - 2], target, atol=1e-4)
        assert not values[length:].any()


def test_sequence_sum_target_is_the_sum():
    batch = small_task("sequence_sum").training_batch(0, 0, 50)
    np.testing.assert_allclose(batch.inputs[..., 0].sum(axis=1), batch.targets, rtol=1e-5, atol=1e-5)


def test_unknown_task_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown task 'parrity'.*parity"):
        get_task("parrity")
    with pytest.raises(ConfigError, match="no option 'length'.*min_length, max_length"):
        get_task("parity", length=5)
    with pytest.raises(ConfigError, match="min_length <= max_length"):
        get_task("reverse", min_length=9, max_length=3)
    with pytest.raises(ConfigError, match="max_value"):
        get_task("number_words", max_value=10**7)


def test_vocabulary_round_trip_and_specials():
    vocabulary = Vocabulary("ab", ("<pad>", "<bos>", "<eos>"))
    assert vocabulary.encode("ba") == [4, 3]
    assert vocabulary.decode([4, 3, EOS, 3]) == ["b", "a"]
    assert Vocabulary("ab").decode([2, 1, PAD, 1]) == ["b", "a"]
    with pytest.raises(ValueError, match="'c' is not in the vocabulary"):
        vocabulary.encode("abc")


def fake_batch(targets, target_lengths=None):
    targets = np.asarray(targets)
    lengths = np.ones(len(targets), np.int32) if target_lengths is None else np.asarray(target_lengths)
    return TaskBatch(np.zeros((len(targets), 1), np.int32), lengths, targets, lengths)


def test_chance_baselines_by_hand():
    assert chance_baseline(get_task("parity"), fake_batch([0, 1, 1, 1])) == ("accuracy", 0.75)
    metric, value = chance_baseline(get_task("sequence_sum"), fake_batch([1.0, 3.0]))
    assert metric == "mse" and value == pytest.approx(1.0)
    # Tags: only the valid steps count (the padding 0s would otherwise be the majority).
    tags = fake_batch([[1, 1, 0, 0], [1, 0, 0, 0]], target_lengths=[2, 1])
    assert chance_baseline(get_task("seen_before"), tags) == ("accuracy", 1.0)
    rows = fake_batch([[3, 2, 0], [3, 2, 0], [4, 2, 0]], target_lengths=[2, 2, 2])
    metric, value = chance_baseline(get_task("reverse"), rows)
    assert metric == "exact_match" and value == pytest.approx(2 / 3)


def test_exact_match_ignores_what_follows_eos():
    targets = jnp.array([[5, 6, EOS, 0], [5, EOS, 0, 0], [7, 7, 7, EOS]])
    predicted = jnp.array([[5, 6, EOS, 9], [5, 6, EOS, 0], [7, 7, 7, 3]])
    np.testing.assert_array_equal(
        exact_match(predicted, targets, jnp.array([3, 2, 4])), [True, False, False]
    )
    # A decode shorter than the target cannot match it.
    assert not exact_match(predicted[:, :2], targets, jnp.array([3, 2, 4])).any()


def test_sequence_objectives_mask_padding_against_numpy(rng):
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    targets = rng.integers(0, 4, (3, 5))
    lengths = np.array([5, 2, 3])
    batch = TaskBatch(np.zeros((3, 5), np.int32), lengths, targets, lengths)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = np.arange(5)[None, :] < lengths[:, None]
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    hits = logits.argmax(-1) == targets
    loss, metrics = tagging_objective(jnp.asarray(logits), batch)
    np.testing.assert_allclose(loss, nll[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], hits[valid].mean(), rtol=1e-6)
    all_right = [hits[row, :length].all() for row, length in enumerate(lengths)]
    np.testing.assert_allclose(metrics["exact_match"], np.mean(all_right))
    _, metrics = seq2seq_objective(jnp.asarray(logits), batch)
    np.testing.assert_allclose(metrics["token_accuracy"], hits[valid].mean(), rtol=1e-6)
