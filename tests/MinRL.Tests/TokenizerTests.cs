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
