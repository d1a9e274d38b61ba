"""Loaders, the built-in grammar, and the deterministic split."""

import zipfile

import pytest

from training import data, grammar, pipeline


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_pair_file_with_two_and_three_columns_and_malformed_lines(tmp_path):
    path = write(
        tmp_path / "pairs.txt",
        "Go.\tVa !\n"
        "I like your style.\tJ'aime ton style.\tCC-BY 2.0 (France) Attribution: tatoeba.org\n"
        "no tab on this line\n"
        "\tmissing english\n"
        "Hi.\tSalut !\n",
    )
    loaded = data.load_sentences(path)
    assert loaded.sentences == ["Go.", "I like your style.", "Hi."]
    assert loaded.skipped == 2


def test_invalid_utf8_line_is_counted_not_fatal(tmp_path):
    path = write(tmp_path / "pairs.txt", b"Go.\tVa !\n\xff\xfe bad\tx\nHi.\tSalut !\n")
    loaded = data.load_sentences(path)
    assert loaded.sentences == ["Go.", "Hi."] and loaded.skipped == 1


def test_zip_as_published(tmp_path):
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("_about.txt", "about the data")
        handle.writestr("fra.txt", "Run!\tCours !\nWho am I?\tQui suis-je ?\n")
    loaded = data.load_sentences(str(archive))
    assert loaded.sentences == ["Run!", "Who am I?"]


def test_plain_text_one_sentence_a_line(tmp_path):
    path = write(tmp_path / "plain.txt", "The cat sat.\n\n  Spaces   folded here.  \n")
    assert data.load_sentences(path).sentences == ["The cat sat.", "Spaces folded here."]


@pytest.mark.parametrize("content", [None, "", "\n\n", "only\tbroken\tpairs\there\n"])
def test_missing_or_empty_files_are_clear_errors(tmp_path, content):
    path = str(tmp_path / "data.txt")
    if content is not None:
        write(tmp_path / "data.txt", content)
    with pytest.raises(data.DataError):
        data.load_sentences(path)


def test_grammar_corpus_is_seeded_distinct_and_accepted():
    first = grammar.corpus(500, seed=3)
    assert first == grammar.corpus(500, seed=3)
    assert first != grammar.corpus(500, seed=4)
    assert len(set(first)) == 500
    assert all(grammar.accepts(sentence) for sentence in first)
    for wrong in ["cat the sees .", "the cat sees", "the cat sees the .", "the spaceship sleeps ."]:
        assert not grammar.accepts(wrong)


def test_split_is_deterministic_deduplicated_and_filtered():
    sentences = [f"sentence number {i} is here ." for i in range(400)]
    sentences += ["Sentence number 1 is   here .", "too short .", " ".join(["long"] * 20)]
    splits = pipeline.prepare(sentences, min_words=5, max_words=14)
    again = pipeline.prepare(list(reversed(sentences)), min_words=5, max_words=14)
    assert sorted(splits.test) == sorted(again.test)
    everything = splits.train + splits.validation + splits.test
    assert len(everything) == 400  # duplicate (case/spacing) and both length outliers dropped
    assert 0 < len(splits.test) < 60 and 0 < len(splits.validation) < 60
