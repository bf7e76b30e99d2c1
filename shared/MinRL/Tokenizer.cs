using System.Text;

namespace MinRL;

/// <summary>
/// The book's tokenizer: one token per character of the task alphabet, plus three special tokens.
/// Its method names are those of Microsoft.ML.Tokenizers (<c>EncodeToIds</c>, <c>Decode</c>,
/// <c>CountTokens</c>), so a chapter reads like code written against a real tokenizer.
/// </summary>
/// <remarks>
/// <para>The vocabulary is fixed — every chapter and every cached base model uses these ids:</para>
/// <code>
///   id  0      1      2      3..12   13  14  15
///   tok &lt;pad&gt;  &lt;bos&gt;  &lt;eos&gt;  0 .. 9   +   =   .
/// </code>
/// <para>A special token is written in text literally, as in <c>"&lt;bos&gt;12+30=42&lt;eos&gt;"</c>, and
/// <see cref="EncodeToIds"/> recognises it. Character-level tokenization is what makes the arithmetic
/// task learnable by a 100k-parameter model: every digit is its own token, so "carry the one" is a
/// pattern over positions, not over an arbitrary subword split.</para>
/// </remarks>
public sealed class CharTokenizer
{
    /// <summary>The one instance every chapter shares (the tokenizer has no state beyond its fixed vocabulary).</summary>
    public static CharTokenizer Instance { get; } = new();

    public const string PadToken = "<pad>";
    public const string BosToken = "<bos>";
    public const string EosToken = "<eos>";

    /// <summary>The plain characters, in id order starting at 3.</summary>
    public const string Alphabet = "0123456789+=.";

    private static readonly string[] Tokens = BuildVocabulary();
    private static readonly string[] Specials = [PadToken, BosToken, EosToken];

    private static string[] BuildVocabulary()
    {
        var v = new List<string> { PadToken, BosToken, EosToken };
        foreach (char c in Alphabet) v.Add(c.ToString());
        return v.ToArray();
    }

    /// <summary>Id of <c>&lt;pad&gt;</c> (0): fills prompts on the left and completions after <c>&lt;eos&gt;</c>.</summary>
    public int PadId => 0;
    /// <summary>Id of <c>&lt;bos&gt;</c> (1): the first real token of every prompt.</summary>
    public int BosId => 1;
    /// <summary>Id of <c>&lt;eos&gt;</c> (2): ends a completion; everything after the first one is ignored.</summary>
    public int EosId => 2;
    /// <summary>Number of tokens (16): the size of the model's embedding table and output layer.</summary>
    public int VocabSize => Tokens.Length;

    /// <summary>The tokens, indexed by id.</summary>
    public IReadOnlyList<string> Vocabulary => Tokens;

    /// <summary>Id of a digit character '0'..'9'.</summary>
    public static int DigitId(int digit) => digit is >= 0 and <= 9
        ? 3 + digit
        : throw new ArgumentOutOfRangeException(nameof(digit), digit, "DigitId: a digit is 0..9");

    /// <summary>Whether <paramref name="id"/> is <c>&lt;pad&gt;</c>, <c>&lt;bos&gt;</c> or <c>&lt;eos&gt;</c>.</summary>
    public bool IsSpecial(int id) => id is >= 0 and < 3;

    /// <summary>The token with this id, e.g. <c>"7"</c> or <c>"&lt;eos&gt;"</c>.</summary>
    public string IdToToken(int id) => (uint)id < (uint)Tokens.Length
        ? Tokens[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"CharTokenizer: id {id} is outside the vocabulary (0..{Tokens.Length - 1})");

    /// <summary>
    /// Splits <paramref name="text"/> into token ids. Special tokens are written literally
    /// (<c>"&lt;bos&gt;1+2=3&lt;eos&gt;"</c> → 1, 4, 13, 5, 14, 6, 2). Any other character must be in
    /// <see cref="Alphabet"/>; an unknown one throws an error naming it, its position and the alphabet.
    /// </summary>
    public IReadOnlyList<int> EncodeToIds(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            char c = text[i];
            if (c == '<')
            {
                int special = Array.FindIndex(Specials, s => string.CompareOrdinal(text, i, s, 0, s.Length) == 0);
                if (special < 0) throw Unknown(text, i);
                ids.Add(special);
                i += Specials[special].Length;
                continue;
            }
            int k = Alphabet.IndexOf(c);
            if (k < 0) throw Unknown(text, i);
            ids.Add(3 + k);
            i++;
        }
        return ids;
    }

    /// <summary>The number of tokens <see cref="EncodeToIds"/> would return.</summary>
    public int CountTokens(string text) => EncodeToIds(text).Count;

    private static ArgumentException Unknown(string text, int position)
    {
        char c = text[position];
        string what = c == '<'
            ? "'<' does not start a special token (<pad>, <bos>, <eos>)"
            : $"the character '{Printable(c)}' (U+{(int)c:X4}) is not in the vocabulary";
        return new ArgumentException(
            $"CharTokenizer: {what}, at position {position} of \"{text}\". " +
            $"Allowed: the characters \"{Alphabet}\" and the special tokens <pad>, <bos>, <eos>.");
    }

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:X4}" : c.ToString();

    /// <summary>The text of <paramref name="ids"/>, special tokens included (<c>"&lt;bos&gt;1+2=3&lt;eos&gt;"</c>),
    /// so that <c>EncodeToIds(Decode(ids))</c> gives <paramref name="ids"/> back.</summary>
    public string Decode(IEnumerable<int> ids) => Decode(ids, considerSpecialTokens: true);

    /// <summary>
    /// The text of <paramref name="ids"/>. With <paramref name="considerSpecialTokens"/> false, the
    /// special tokens are dropped (<c>"1+2=3"</c>) — Microsoft.ML.Tokenizers' parameter name and meaning.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool considerSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            string token = IdToToken(id);
            if (considerSpecialTokens || !IsSpecial(id)) sb.Append(token);
        }
        return sb.ToString();
    }

    /// <summary>Decodes int64 ids, as read from a token tensor with <c>t.data&lt;long&gt;().ToArray()</c>.</summary>
    public string Decode(IEnumerable<long> ids, bool considerSpecialTokens = true)
        => Decode(ids.Select(id => id is >= int.MinValue and <= int.MaxValue
            ? (int)id
            : throw new ArgumentOutOfRangeException(nameof(ids), id, $"CharTokenizer: id {id} is outside the vocabulary (0..{Tokens.Length - 1})")),
            considerSpecialTokens);
}
