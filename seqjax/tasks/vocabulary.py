"""Token vocabularies of the generated tasks: symbols <-> integer ids, with reserved specials.

Id 0 is always padding (``PAD``), so a padded batch is zeros past each sequence's length.
Output vocabularies of sequence-to-sequence tasks also reserve ``BOS = 1`` (the decoder's
first input) and ``EOS = 2`` (the end of every target).
"""

PAD, BOS, EOS = 0, 1, 2
INPUT_SPECIALS = ("<pad>",)
OUTPUT_SPECIALS = ("<pad>", "<bos>", "<eos>")


class Vocabulary:
    """``tokens[i]`` is the symbol of id ``i``: the specials first, then ``symbols`` in order."""

    def __init__(self, symbols, specials=INPUT_SPECIALS):
        self.tokens = tuple(specials) + tuple(symbols)
        self.num_specials = len(specials)
        self._ids = {token: index for index, token in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ValueError(f"vocabulary symbols must be distinct, got {self.tokens}")

    def __len__(self):
        return len(self.tokens)

    def encode(self, symbols):
        """Ids of an iterable of symbols (a string is a sequence of one-character symbols)."""
        try:
            return [self._ids[symbol] for symbol in symbols]
        except KeyError as error:
            raise ValueError(
                f"symbol {error.args[0]!r} is not in the vocabulary {self.tokens[self.num_specials:]}"
            ) from None

    def decode(self, ids):
        """Symbols of ``ids`` up to the first ``EOS`` (outputs) or ``PAD``; specials dropped."""
        symbols = []
        for index in ids:
            index = int(index)
            if index == PAD or (self.num_specials > EOS and index == EOS):
                break
            if index >= self.num_specials:
                symbols.append(self.tokens[index])
        return symbols
