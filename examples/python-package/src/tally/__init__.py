"""Word counts, the package the python-ci example lints and tests."""

from collections import Counter

__all__ = ["count_words", "top"]


def count_words(text):
    """How often each lower-cased word of `text` occurs."""
    words = (word.strip(".,;:!?\"'()").lower() for word in text.split())
    return Counter(word for word in words if word)


def top(text, n=3):
    """The `n` most frequent words of `text`, most frequent first, ties alphabetical."""
    counts = count_words(text)
    return sorted(counts, key=lambda word: (-counts[word], word))[:n]
