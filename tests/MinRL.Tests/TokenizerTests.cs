namespace MinRL.Tests;

public class TokenizerTests
{
    private static readonly CharTokenizer Tok = CharTokenizer.Instance;

    [Fact]
    public void Vocabulary_has_the_fixed_ids()
    {
        Assert.Equal(16, Tok.VocabSize);
        Assert.Equal((0, 1, 2), (Tok.PadId, Tok.BosId, Tok.EosId));
        Assert.Equal(
            new[] { "<pad>", "<bos>", "<eos>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", "." },
            Tok.Vocabulary);
        for (int d = 0; d <= 9; d++) Assert.Equal(3 + d, CharTokenizer.DigitId(d));
        Assert.Throws<ArgumentOutOfRangeException>(() => CharTokenizer.DigitId(10));
    }

    [Fact]
    public void Encodes_characters_and_literal_special_tokens()
    {
        Assert.Equal(new[] { 1, 4, 13, 5, 14, 6, 2 }, Tok.EncodeToIds("<bos>1+2=3<eos>"));
        Assert.Equal(new[] { 0, 0, 1, 6, 5, 13, 12, 3, 14 }, Tok.EncodeToIds("<pad><pad><bos>32+90="));
        Assert.Equal(new[] { 15, 2, 2 }, Tok.EncodeToIds(".<eos><eos>"));
        Assert.Empty(Tok.EncodeToIds(""));
        Assert.Equal(7, Tok.CountTokens("<bos>1+2=3<eos>"));
    }

    [Theory]
    [InlineData("<bos>12+30=42<eos>")]
    [InlineData("<pad><pad><bos>0+0=0.<eos><pad>")]
    [InlineData("0123456789+=.")]
    [InlineData("")]
    public void Text_round_trips(string text) => Assert.Equal(text, Tok.Decode(Tok.EncodeToIds(text)));

    [Fact]
    public void Every_id_round_trips()
    {
        var all = Enumerable.Range(0, Tok.VocabSize).ToArray();
        Assert.Equal(all, Tok.EncodeToIds(Tok.Decode(all)));
    }

    [Fact]
    public void Decode_can_drop_special_tokens()
    {
        var ids = Tok.EncodeToIds("<pad><bos>12+30=42.<eos><pad>");
        Assert.Equal("12+30=42.", Tok.Decode(ids, considerSpecialTokens: false));
        Assert.Equal("<pad><bos>12+30=42.<eos><pad>", Tok.Decode(ids, considerSpecialTokens: true));
    }

    [Fact]
    public void Decode_reads_int64_ids_from_tensors()
    {
        long[] ids = [1, 4, 13, 5, 14, 6, 2];
        Assert.Equal("<bos>1+2=3<eos>", Tok.Decode(ids));
        Assert.Equal("1+2=3", Tok.Decode(ids, considerSpecialTokens: false));
    }

    [Fact]
    public void Unknown_character_names_it_its_position_and_the_alphabet()
    {
        var e = Assert.Throws<ArgumentException>(() => Tok.EncodeToIds("<bos>12-3="));
        Assert.Contains("'-'", e.Message);
        Assert.Contains("position 7", e.Message);
        Assert.Contains("0123456789+=.", e.Message);
        Assert.Contains("<bos>", e.Message);

        var space = Assert.Throws<ArgumentException>(() => Tok.EncodeToIds("1 2"));
        Assert.Contains("U+0020", space.Message);
        Assert.Contains("position 1", space.Message);
    }

    [Fact]
    public void Malformed_special_token_is_an_error_at_its_position()
    {
        var e = Assert.Throws<ArgumentException>(() => Tok.EncodeToIds("12<eo"));
        Assert.Contains("position 2", e.Message);
        Assert.Contains("special token", e.Message);
        Assert.Throws<ArgumentException>(() => Tok.EncodeToIds("<BOS>"));
    }

    [Fact]
    public void Out_of_range_id_is_an_error()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode(new[] { 1, 16 }));
        Assert.Contains("id 16", e.Message);
        Assert.Contains("0..15", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode(new[] { -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode(new long[] { 1L << 40 }));
    }
}

/// <summary>
/// The tokenizer through Microsoft.ML.Tokenizers' own API: what a chapter would call on any
/// <see cref="Microsoft.ML.Tokenizers.Tokenizer"/>, so that swapping in a library tokenizer is one line.
/// </summary>
public class TokenizerLibraryApiTests
{
    // Deliberately typed as the library's base class: every call below binds to Tokenizer's members.
    private static readonly Microsoft.ML.Tokenizers.Tokenizer T = CharTokenizer.Instance;

    // The whole vocabulary, written out: cached base models depend on every one of these ids.
    public static TheoryData<string, int> IdTable => new()
    {
        { "<pad>", 0 }, { "<bos>", 1 }, { "<eos>", 2 },
        { "0", 3 }, { "1", 4 }, { "2", 5 }, { "3", 6 }, { "4", 7 }, { "5", 8 }, { "6", 9 }, { "7", 10 },
        { "8", 11 }, { "9", 12 }, { "+", 13 }, { "=", 14 }, { ".", 15 },
    };

    [Fact]
    public void Is_a_library_tokenizer_with_no_pretokenizer_or_normalizer()
    {
        Assert.IsAssignableFrom<Microsoft.ML.Tokenizers.Tokenizer>(CharTokenizer.Instance);
        Assert.Null(T.PreTokenizer);
        Assert.Null(T.Normalizer);
        Assert.Equal(
            new Dictionary<string, int> { ["<pad>"] = 0, ["<bos>"] = 1, ["<eos>"] = 2 },
            CharTokenizer.Instance.SpecialTokens);
    }

    [Theory]
    [MemberData(nameof(IdTable))]
    public void Every_token_has_its_pinned_id_both_ways(string token, int id)
    {
        Assert.Equal(new[] { id }, T.EncodeToIds(token));
        Assert.Equal(new[] { id }, T.EncodeToIds(token.AsSpan()));
        Assert.Equal(token, T.Decode(new[] { id }));
        Assert.Equal(token, CharTokenizer.Instance.IdToToken(id));
        Assert.Equal(token, CharTokenizer.Instance.Vocabulary[id]);
        Assert.Equal(id is 0 or 1 or 2, CharTokenizer.Instance.IsSpecial(id));
    }

    [Fact]
    public void The_table_is_the_whole_vocabulary()
    {
        var ids = IdTable.Select(row => (int)row[1]).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 16), ids);
        Assert.Equal(16, CharTokenizer.Instance.VocabSize);
    }

    [Fact]
    public void EncodeToIds_CountTokens_and_Decode_through_the_base_class()
    {
        const string text = "<pad><bos>47+9=56.<eos><pad>";
        int[] ids = [0, 1, 7, 10, 13, 12, 14, 8, 9, 15, 2, 0];
        Assert.Equal(ids, T.EncodeToIds(text));
        Assert.Equal(ids, T.EncodeToIds(text.AsSpan()));
        Assert.Equal(12, T.CountTokens(text));
        Assert.Equal(12, T.CountTokens(text.AsSpan()));
        Assert.Equal(text, T.Decode(ids));
        Assert.Empty(T.EncodeToIds(""));
        Assert.Equal(0, T.CountTokens(""));
        Assert.Equal("", T.Decode([]));
    }

    [Fact]
    public void EncodeToTokens_gives_each_token_its_text_and_offsets()
    {
        const string text = "<bos>12+3=<eos>";
        int n = text.Length;
        var tokens = T.EncodeToTokens(text, out string? normalized);
        Assert.Null(normalized);
        Assert.Equal(
            new (int Id, string Value, int Start, int End)[]
            {
                (1, "<bos>", 0, 5), (4, "1", 5, 6), (5, "2", 6, 7), (13, "+", 7, 8), (6, "3", 8, 9), (14, "=", 9, 10),
                (2, "<eos>", 10, 15),
            },
            tokens.Select(t => (t.Id, t.Value, t.Offset.Start.GetOffset(n), t.Offset.End.GetOffset(n))));
        // Each token's offsets cut its own text out of the input.
        Assert.All(tokens, t => Assert.Equal(t.Value, text[t.Offset]));
        Assert.Equal(tokens, T.EncodeToTokens(text.AsSpan(), out _));
    }

    [Fact]
    public void A_maximum_token_count_stops_at_a_token_boundary()
    {
        const string text = "<bos>12+30=";
        Assert.Equal(new[] { 1, 4, 5 }, T.EncodeToIds(text, 3, out string? normalized, out int consumed));
        Assert.Null(normalized);
        Assert.Equal(7, consumed);                     // "<bos>12"
        Assert.Equal(new[] { 1 }, T.EncodeToIds(text, 1, out _, out consumed));
        Assert.Equal(5, consumed);                     // the whole special token, never part of it
        Assert.Equal(6, T.GetIndexByTokenCount(text, 2, out _, out int count));   // "<bos>1"
        Assert.Equal(2, count);
        Assert.Equal(5, T.GetIndexByTokenCount(text, 1, out _, out count));       // "<bos>"
        Assert.Equal(1, count);
        Assert.Equal(text.Length - 2, T.GetIndexByTokenCountFromEnd(text, 2, out _, out count));   // "0="
        Assert.Equal(2, count);
        Assert.Equal(0, T.GetIndexByTokenCountFromEnd(text, 100, out _, out count));
        Assert.Equal(7, count);
    }

    [Fact]
    public void Decode_into_a_span_reports_a_short_destination_and_a_bad_id()
    {
        int[] ids = [1, 4, 13, 5, 14, 6, 2];   // "<bos>1+2=3<eos>", 15 characters
        Span<char> buffer = stackalloc char[32];
        Assert.Equal(System.Buffers.OperationStatus.Done, T.Decode(ids, buffer, out int used, out int written));
        Assert.Equal((7, 15), (used, written));
        Assert.Equal("<bos>1+2=3<eos>", buffer[..written].ToString());

        Assert.Equal(System.Buffers.OperationStatus.DestinationTooSmall,
            T.Decode(ids, buffer[..12], out used, out written));
        Assert.Equal((6, 10), (used, written));       // "<bos>1+2=3" fits, "<eos>" does not

        Assert.Equal(System.Buffers.OperationStatus.InvalidData, T.Decode([4, 16, 5], buffer, out used, out written));
        Assert.Equal((1, 1), (used, written));
        Assert.Throws<ArgumentOutOfRangeException>(() => T.Decode([4, 16, 5]));
    }

    public static TheoryData<bool> Periods => new() { false, true };

    [Theory]
    [MemberData(nameof(Periods))]
    public void Every_training_string_round_trips(bool period)
    {
        // All 10,000 problems, as the model sees them: the left-padded 12-token sequence of SftExample,
        // and the plain text before padding.
        for (int a = 0; a <= ArithmeticTask.MaxOperand; a++)
            for (int b = 0; b <= ArithmeticTask.MaxOperand; b++)
            {
                var p = new Problem(a, b);
                string plain = p.PromptText + p.CompletionText(period);
                var ids = T.EncodeToIds(plain);
                Assert.Equal(plain, T.Decode(ids));
                Assert.Equal(ids.Count, T.CountTokens(plain));
                Assert.Equal(plain.Length - 8, ids.Count);   // one token per character, but <bos>, <eos>: 5 each

                long[] padded = ArithmeticTask.SftExample(p, period).Ids;
                string text = CharTokenizer.Instance.Decode(padded);
                Assert.Equal(ArithmeticTask.SequenceLength, T.CountTokens(text));
                Assert.Equal(padded.Select(id => (int)id), T.EncodeToIds(text));
                Assert.Equal(ids, T.EncodeToIds(text).Where(id => id != 0));   // it is the plain text, padded
            }
    }

    [Theory]
    [InlineData("<bos>12-3=", 7, "'-'")]
    [InlineData("12+3= ", 5, "U+0020")]
    [InlineData("<bos>1<eo", 6, "'<' does not start a special token")]
    [InlineData("<BOS>", 0, "'<' does not start a special token")]
    public void Unknown_character_is_an_error_through_every_entry_point(string text, int position, string what)
    {
        foreach (var encode in new Action[]
        {
            () => T.EncodeToIds(text), () => T.EncodeToIds(text.AsSpan()), () => T.CountTokens(text),
            () => T.EncodeToTokens(text, out _), () => T.EncodeToIds(text, 100, out _, out _),
        })
        {
            var e = Assert.Throws<ArgumentException>(encode);
            Assert.Contains(what, e.Message);
            Assert.Contains($"position {position} of \"{text}\"", e.Message);
            Assert.Contains("\"0123456789+=.\"", e.Message);
            Assert.Contains("<pad>, <bos>, <eos>", e.Message);
        }
    }
}
