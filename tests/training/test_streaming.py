"""Corpora over the streaming threshold: one counting pass, the split and filter in tf.data."""

import random
import zipfile

import pytest

from tfode.text import build_vocabulary, rank_vocabulary
from training import grammar, streaming


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    lines = [grammar.sentence(rng) for _ in range(3000)] + ["too short .", "   ", "x " * 30]
    plain = folder / "corpus.txt"
    plain.write_text("\n".join(lines) + "\n")
    pairs = folder / "pairs.txt"
    pairs.write_text("".join(f"{line}\tune phrase\tCC-BY 2.0 (France)\n" for line in lines))
    zipped = folder / "pairs.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(pairs, "fra.txt")
    fitting = sum(5 <= len(line.split()) <= 14 for line in lines)
    return plain, pairs, zipped, fitting


def texts(dataset):
    return [item.decode("utf-8") for item in dataset.as_numpy_iterator()]


def test_the_splits_are_disjoint_filtered_and_the_same_for_every_format(corpus):
    plain, pairs, zipped, fitting = corpus
    splits = {name: texts(streaming.sentences(str(plain), name)) for name in streaming.SPLIT_BUCKETS}
    assert sum(map(len, splits.values())) == fitting < 3003  # lines outside 5–14 words are dropped
    assert not set(splits["test"]) & set(splits["train"]) and not set(splits["validation"]) & set(splits["train"])
    assert 0.02 < len(splits["test"]) / fitting < 0.08
    for path in (pairs, zipped):  # pair files: the first column, the same split
        assert texts(streaming.sentences(str(path), "test")) == splits["test"]
    loaded = streaming.load_splits(str(zipped))
    assert loaded.train == splits["train"] and loaded.validation == splits["validation"]


def test_one_counting_pass_gives_the_vocabulary_of_the_training_split(corpus):
    plain = str(corpus[0])
    scan = streaming.scan(plain, batch_size=256)
    train = texts(streaming.sentences(plain, "train"))
    assert scan.sizes["train"] == len(train)
    assert scan.sizes["test"] == len(texts(streaming.sentences(plain, "test")))
    assert rank_vocabulary(scan.counts) == build_vocabulary(train)


@pytest.mark.slow
def test_training_streams_a_large_file(corpus, tmp_path, monkeypatch, capsys):
    from training import train

    monkeypatch.setattr(streaming, "STREAM_BYTES", 1024)  # the test corpus counts as large
    run_dir = tmp_path / "run"
    code = train.main(["--preset", "tiny", "--data", str(corpus[1]), "--decoder", "gru", "--epochs", "1",
                       "--run-dir", str(run_dir), "--quiet"])
    output = capsys.readouterr()
    assert code == 0, output.err[-2000:]
    assert "streamed" in output.out and (run_dir / "model.keras").exists()
