import unittest

from tally import count_words, top


class CountWords(unittest.TestCase):
    def test_case_and_punctuation_are_ignored(self):
        self.assertEqual(count_words("The cat, the hat.")["the"], 2)

    def test_empty_text_has_no_words(self):
        self.assertEqual(count_words("  "), {})


class Top(unittest.TestCase):
    def test_most_frequent_first_ties_alphabetical(self):
        self.assertEqual(top("b a b c a b", n=2), ["b", "a"])


if __name__ == "__main__":
    unittest.main()
