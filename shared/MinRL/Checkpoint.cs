using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>What <see cref="Checkpoint.Load"/> returns: the tensors in the order the header lists them,
/// and the header's <c>__metadata__</c> strings.</summary>
public sealed record CheckpointContents(
    OrderedDictionary<string, torch.Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>What <see cref="Checkpoint.LoadInto(string, IEnumerable{ValueTuple{string, torch.Tensor}}, bool)"/> did,
/// as PyTorch's <c>load_state_dict</c> reports it: names the target has but the file lacks, names the file
/// has but the target lacks (both empty when strict), and the file's metadata.</summary>
public sealed record LoadResult(
    IReadOnlyList<string> MissingKeys, IReadOnlyList<string> UnexpectedKeys,
    IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Saves and loads tensors in the <b>safetensors</b> format, the one Hugging Face models ship in, so a
/// MinRL checkpoint opens in PyTorch (<c>safetensors.torch.load_file</c>) and a PyTorch one opens here.
/// </summary>
/// <remarks>
/// <para>The format is simple enough to write by hand, which is why it replaced pickles:</para>
/// <code>
///   [ 8 bytes ]  N, the header's length, unsigned 64-bit little-endian
///   [ N bytes ]  the header: UTF-8 JSON, padded with spaces
///                { "__metadata__": { "key": "value", ... },                   (optional, strings only)
///                  "name": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ... }
///   [ rest    ]  the data section: each tensor's elements, row-major, little-endian, at
///                [begin, end) relative to the start of this section
/// </code>
/// <para>Nothing in the file can run code, and a reader can check every claim it makes before it trusts
/// it: the loader here verifies that each tensor's byte range lies in the file, that the ranges tile
/// the data section exactly (no overlap, no gap, no trailing bytes — as the reference Rust reader
/// requires), and that each range's length is the shape's element count times the dtype's size. Each
/// error names the file and the tensor.</para>
/// <para>The writer pads the header with spaces so that the data section starts at a multiple of 16
/// bytes (8 + N ≡ 0 mod 16; the format asks for 8), lays the data out largest element size first so
/// every tensor is aligned to its element size, and writes atomically: to a temporary file beside
/// the target, flushed to disk, then renamed over it, so a crash mid-save leaves the old checkpoint
/// intact rather than a truncated one.</para>
/// <para>dtypes: <c>F32</c> (float32), <c>F64</c> (float64), <c>I64</c> (int64), <c>BOOL</c> (one byte, 0 or 1).</para>
/// </remarks>
public static class Checkpoint
{
    /// <summary>The data section starts at a multiple of this many bytes.</summary>
    public const int Alignment = 16;

    /// <summary>Headers longer than this are refused as corrupt (the reference reader's limit, 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    // ------------------------------------------------------------------ dtypes

    private static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"safetensors: dtype {t} has no safetensors name here"),
    };

    private static ScalarType? DtypeFromName(string name) => name switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "BOOL" => ScalarType.Bool,
        _ => null,
    };

    private static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.Float64 => 8,
        ScalarType.Int64 => 8,
        _ => 1,
    };

    // ------------------------------------------------------------------ save

    /// <summary>
    /// Writes <paramref name="tensors"/> (in the given order) and optional string
    /// <paramref name="metadata"/> to <paramref name="path"/> as safetensors, atomically. Creates the
    /// directory if needed. Names must be unique and non-empty; <c>__metadata__</c> is reserved.
    /// </summary>
    public static void Save(string path, IEnumerable<(string name, torch.Tensor tensor)> tensors,
                            IDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var list = tensors.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            if (string.IsNullOrEmpty(name))
                throw new ArgumentException($"checkpoint '{path}': a tensor has an empty name");
            if (name == "__metadata__")
                throw new ArgumentException(
                    $"checkpoint '{path}': '__metadata__' is reserved and cannot name a tensor");
            if (!seen.Add(name))
                throw new ArgumentException($"checkpoint '{path}': the name '{name}' is used by two tensors");
            ArgumentNullException.ThrowIfNull(tensor, name);
        }
        if (metadata is not null)
            foreach (var (k, v) in metadata)
                if (v is null)
                    throw new ArgumentException(
                        $"checkpoint '{path}': metadata '{k}' is null; safetensors metadata values are strings");

        // The data section holds the tensors back to back, 8-byte dtypes first, then 4-byte, then
        // 1-byte (stable within a size, as the safetensors library lays them out): the section
        // starts 16-byte aligned, so every tensor then starts at a multiple of its element size,
        // which zero-copy readers (torch.frombuffer, memory maps) need. The header keeps the
        // caller's order.
        var layout = list.Select((t, i) => (t.tensor, i))
            .OrderByDescending(x => ElementSize(x.tensor.dtype)).ThenBy(x => x.i).ToList();
        var begin = new long[list.Count];
        long offset = 0;
        foreach (var (tensor, i) in layout)
        {
            begin[i] = offset;
            offset += tensor.numel() * ElementSize(tensor.dtype);
        }

        // The header: metadata first, then each tensor's dtype, shape and byte range.
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json,
                   new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            for (int i = 0; i < list.Count; i++)
            {
                var (name, tensor) = list[i];
                long bytes = tensor.numel() * ElementSize(tensor.dtype);
                w.WriteStartObject(name);
                w.WriteString("dtype", DtypeName(tensor.dtype));
                w.WriteStartArray("shape");
                foreach (long d in tensor.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(begin[i]);
                w.WriteNumberValue(begin[i] + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int headerLength = (int)json.Length;
        int padded = headerLength + (Alignment - (8 + headerLength) % Alignment) % Alignment;

        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = $"{full}.tmp-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
                fs.Write(len);
                fs.Write(json.GetBuffer(), 0, headerLength);
                for (int i = headerLength; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var (tensor, _) in layout) WriteData(fs, tensor);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes a state dict (<c>module.state_dict()</c>), in its order.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> stateDict,
                            IDictionary<string, string>? metadata = null)
        => Save(path, stateDict.Select(kv => (kv.Key, kv.Value)), metadata);

    private static void WriteData(Stream s, torch.Tensor t)
    {
        if (t.numel() == 0) return;                    // nothing to write (and TorchSharp cannot read out 0 elements)
        t = t.detach().cpu().contiguous();             // the bytes, from wherever the tensor lives
        switch (t.dtype)
        {
            case ScalarType.Float32: WriteLittleEndian(s, t.data<float>().ToArray()); break;
            case ScalarType.Float64: WriteLittleEndian(s, t.data<double>().ToArray()); break;
            case ScalarType.Int64: WriteLittleEndian(s, t.data<long>().ToArray()); break;
            case ScalarType.Bool:
                var b = t.data<bool>().ToArray();
                var bytes = new byte[b.Length];
                for (int i = 0; i < b.Length; i++) bytes[i] = b[i] ? (byte)1 : (byte)0;
                s.Write(bytes);
                break;
            default: throw new NotSupportedException($"safetensors: dtype {t.dtype} cannot be saved");
        }
    }

    private static void WriteLittleEndian<T>(Stream s, T[] values) where T : unmanaged
    {
        // The format is little-endian, as is every machine .NET runs MinRL on; refuse rather than
        // write a file other readers would misread.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors: big-endian machines are not supported");
        s.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    // ------------------------------------------------------------------ load

    /// <summary>Reads a safetensors file: its tensors, in header order, and its metadata.</summary>
    public static CheckpointContents Load(string path)
    {
        var (entries, metadata, bytes, dataStart) = ReadHeader(path, readData: true);
        var tensors = new OrderedDictionary<string, torch.Tensor>(StringComparer.Ordinal);
        foreach (var e in entries)
            tensors.Add(e.Name, ToTensor(path, e,
                bytes.AsSpan(checked((int)(dataStart + e.Begin)), checked((int)(e.End - e.Begin)))));
        return new CheckpointContents(tensors, metadata);
    }

    /// <summary>Only the <c>__metadata__</c> of a checkpoint, without reading its data (e.g. to check a cache
    /// key).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) =>
        ReadHeader(path, readData: false).metadata;

    /// <summary>
    /// Copies the tensors of <paramref name="path"/> into the existing <paramref name="target"/> tensors
    /// (a model's parameters), matched by name, converting the dtype if it differs. Nothing is copied
    /// unless every check passes: a shape mismatch is always an error (it names the tensor and both
    /// shapes); with <paramref name="strict"/>, so are names missing from the file and names the
    /// target does not have — otherwise those are reported in the result.
    /// </summary>
    public static LoadResult LoadInto(string path, IEnumerable<(string name, torch.Tensor tensor)> target,
                                      bool strict = true)
    {
        var contents = Load(path);
        var targets = target.ToList();
        var targetNames = new HashSet<string>(targets.Select(t => t.name), StringComparer.Ordinal);
        var missing = targets.Where(t => !contents.Tensors.ContainsKey(t.name)).Select(t => t.name).ToList();
        var unexpected = contents.Tensors.Keys.Where(k => !targetNames.Contains(k)).ToList();
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var sb = new StringBuilder($"checkpoint '{path}' does not match the model:");
            if (missing.Count > 0) sb.Append($" missing from the file: {string.Join(", ", missing)}.");
            if (unexpected.Count > 0) sb.Append($" in the file but not in the model: {string.Join(", ", unexpected)}.");
            throw new InvalidOperationException(sb.ToString());
        }
        foreach (var (name, tensor) in targets)
        {
            if (!contents.Tensors.TryGetValue(name, out var src)) continue;
            if (!src.shape.SequenceEqual(tensor.shape))
                throw new InvalidOperationException(
                    $"checkpoint '{path}': tensor '{name}' has shape {Str(src.shape)} in the file " +
                    $"but {Str(tensor.shape)} in the model");
        }
        using (torch.no_grad())
        {
            foreach (var (name, tensor) in targets)
                if (contents.Tensors.TryGetValue(name, out var src)) tensor.copy_(src);
        }
        return new LoadResult(missing, unexpected, contents.Metadata);
    }

    /// <summary>Loads into a state dict (<c>module.state_dict()</c>), whose tensors share the module's
    /// storage.</summary>
    public static LoadResult LoadInto(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> stateDict,
                                      bool strict = true)
        => LoadInto(path, stateDict.Select(kv => (kv.Key, kv.Value)), strict);

    private static string Str(long[] shape) => $"[{string.Join(", ", shape)}]";

    private sealed record Entry(string Name, ScalarType Dtype, long[] Shape, long Begin, long End);

    private static (List<Entry> entries, IReadOnlyDictionary<string, string> metadata, byte[] bytes, long dataStart)
        ReadHeader(string path, bool readData)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"checkpoint '{path}' does not exist", path);

        byte[] bytes;
        long fileLength;
        if (readData)
        {
            bytes = File.ReadAllBytes(path);
            fileLength = bytes.LongLength;
        }
        else
        {
            using var fs = File.OpenRead(path);
            fileLength = fs.Length;
            var head = new byte[8];
            fs.ReadExactly(head, 0, (int)Math.Min(8, fileLength));
            ulong n0 = fileLength >= 8 ? BinaryPrimitives.ReadUInt64LittleEndian(head) : 0;
            int take = (int)Math.Min((ulong)Math.Max(0, fileLength - 8), Math.Min(n0, (ulong)MaxHeaderBytes + 1));
            bytes = new byte[8 + take];
            head.CopyTo(bytes, 0);
            fs.ReadExactly(bytes, 8, take);
        }

        if (fileLength < 8)
            throw new InvalidDataException($"checkpoint '{path}' is truncated: {fileLength} bytes, " +
                                           "too short for the 8-byte header length of a safetensors file");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > MaxHeaderBytes)
            throw new InvalidDataException($"checkpoint '{path}' is not a safetensors file (or is corrupt): " +
                                           $"its first 8 bytes give a header length of {n} bytes, " +
                                           $"over the {MaxHeaderBytes}-byte limit");
        if (8 + (long)n > fileLength)
            throw new InvalidDataException($"checkpoint '{path}' is truncated: its header should be {n} bytes " +
                                           $"but only {fileLength - 8} follow the length field");
        long dataStart = 8 + (long)n;
        long dataLength = fileLength - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"checkpoint '{path}': the header is not valid JSON ({e.Message})", e);
        }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException(
                $"checkpoint '{path}': the header must be a JSON object, but it is {doc.RootElement.ValueKind}");

        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!names.Add(prop.Name))
                throw new InvalidDataException($"checkpoint '{path}': the header lists '{prop.Name}' twice");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"checkpoint '{path}': __metadata__ must be an object of strings, " +
                                                   $"but it is {prop.Value.ValueKind}");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"checkpoint '{path}': __metadata__ value '{m.Name}' " +
                                                       $"must be a string, but it is {m.Value.ValueKind}");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            entries.Add(ParseEntry(path, prop));
        }

        // The byte ranges must tile the data section: sorted by start, each begins where the previous ended.
        foreach (var e in entries)
            if (e.End > dataLength)
                throw new InvalidDataException(
                    $"checkpoint '{path}' is truncated: tensor '{e.Name}' occupies bytes [{e.Begin}, {e.End}) " +
                    $"of the data section, but the file has only {dataLength} data bytes");
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long expected = 0;
        Entry? previous = null;
        foreach (var e in sorted)
        {
            if (e.Begin < expected)
                throw new InvalidDataException(
                    $"checkpoint '{path}': tensors '{previous!.Name}' [{previous.Begin}, {previous.End}) " +
                    $"and '{e.Name}' [{e.Begin}, {e.End}) overlap in the data section");
            if (e.Begin > expected)
                throw new InvalidDataException(
                    $"checkpoint '{path}': bytes [{expected}, {e.Begin}) of the data section, " +
                    $"before tensor '{e.Name}', belong to no tensor");
            expected = e.End;
            previous = e;
        }
        if (readData && expected != dataLength)
            throw new InvalidDataException(
                $"checkpoint '{path}': the data section has {dataLength} bytes " +
                $"but its tensors cover only the first {expected}; the file is corrupt");
        return (entries, metadata, bytes, dataStart);
    }

    private static Entry ParseEntry(string path, JsonProperty prop)
    {
        string name = prop.Name;
        var v = prop.Value;
        string where = $"checkpoint '{path}': tensor '{name}'";
        if (v.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: its header entry must be an object with dtype, shape " +
                                           $"and data_offsets, but it is {v.ValueKind}");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: its header entry has no dtype string");
        string dtypeName = dt.GetString()!;
        var dtype = DtypeFromName(dtypeName)
            ?? throw new InvalidDataException($"{where} has dtype '{dtypeName}', which MinRL cannot read " +
                                              "(it reads F32, F64, I64 and BOOL)");

        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{where}: its header entry has no shape array");
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new InvalidDataException($"{where}: shape {sh.GetRawText()} must hold non-negative integers");
            shape[k++] = dim;
        }

        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array
            || off.GetArrayLength() != 2)
            throw new InvalidDataException($"{where}: its header entry needs data_offsets [begin, end]");
        long[] be = new long[2];
        k = 0;
        foreach (var o in off.EnumerateArray())
        {
            if (o.ValueKind != JsonValueKind.Number || !o.TryGetInt64(out long x) || x < 0)
                throw new InvalidDataException(
                    $"{where}: data_offsets {off.GetRawText()} must be non-negative integers");
            be[k++] = x;
        }
        if (be[1] < be[0])
            throw new InvalidDataException($"{where}: data_offsets [{be[0]}, {be[1]}) end before they begin");

        long numel = 1;
        try { foreach (long d in shape) numel = checked(numel * d); }
        catch (OverflowException) { throw new InvalidDataException($"{where}: shape {Str(shape)} is too large"); }
        long need = numel * ElementSize(dtype);
        if (need != be[1] - be[0])
            throw new InvalidDataException(
                $"{where}: shape {Str(shape)} of {dtypeName} needs {need} bytes, " +
                $"but data_offsets [{be[0]}, {be[1]}) hold {be[1] - be[0]}");
        return new Entry(name, dtype, shape, be[0], be[1]);
    }

    private static torch.Tensor ToTensor(string path, Entry e, ReadOnlySpan<byte> raw)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors: big-endian machines are not supported");
        switch (e.Dtype)
        {
            case ScalarType.Float32: return torch.tensor(MemoryMarshal.Cast<byte, float>(raw).ToArray(), e.Shape);
            case ScalarType.Float64: return torch.tensor(MemoryMarshal.Cast<byte, double>(raw).ToArray(), e.Shape);
            case ScalarType.Int64: return torch.tensor(MemoryMarshal.Cast<byte, long>(raw).ToArray(), e.Shape);
            default:
                var b = new bool[raw.Length];
                for (int i = 0; i < raw.Length; i++)
                    b[i] = raw[i] switch
                    {
                        0 => false,
                        1 => true,
                        var x => throw new InvalidDataException($"checkpoint '{path}': tensor '{e.Name}' (BOOL) " +
                                                                $"holds the byte {x} at element {i}; a bool is 0 or 1"),
                    };
                return torch.tensor(b, e.Shape);
        }
    }
}
