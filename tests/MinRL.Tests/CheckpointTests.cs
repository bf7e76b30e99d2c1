using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("minrl-ckpt-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static (string, torch.Tensor)[] AllDtypes() =>
    [
        ("w.f32", torch.tensor(new[] { 1.5f, -0f, float.NaN, float.PositiveInfinity, 1e-45f, -3.25f }, [2, 3])),
        ("w.f64", torch.tensor(new[] { Math.PI, -Math.E, double.NegativeInfinity, 5e-324 }, [4, 1])),
        ("ids", torch.tensor(new[] { long.MinValue, -1L, 0L, 1L << 40, long.MaxValue }, [5])),
        ("mask", torch.tensor(new[] { true, false, false, true, true, false }, [3, 2])),
        ("scalar", torch.tensor(2.75f)),
        ("empty", torch.zeros(new long[] { 0, 4 })),
    ];

    private static byte[] Bytes(torch.Tensor t) => t.numel() == 0 ? [] : t.dtype switch   // TorchSharp cannot read 0 elements
    {
        ScalarType.Float32 => t.data<float>().ToArray().SelectMany(BitConverter.GetBytes).ToArray(),
        ScalarType.Float64 => t.data<double>().ToArray().SelectMany(BitConverter.GetBytes).ToArray(),
        ScalarType.Int64 => t.data<long>().ToArray().SelectMany(BitConverter.GetBytes).ToArray(),
        _ => t.data<bool>().ToArray().Select(b => b ? (byte)1 : (byte)0).ToArray(),
    };

    // ------------------------------------------------------------------ round trip and layout

    [Fact]
    public void Round_trip_keeps_every_dtype_shape_bit_and_the_order()
    {
        var path = PathOf("all.safetensors");
        var tensors = AllDtypes();
        var meta = new Dictionary<string, string> { ["kit"] = "1", ["config"] = "{\"d_model\": 64, \"tokens\": \"<eos>+\"}" };
        Checkpoint.Save(path, tensors, meta);

        var loaded = Checkpoint.Load(path);
        Assert.Equal(tensors.Select(t => t.Item1), loaded.Tensors.Keys);
        foreach (var (name, t) in tensors)
        {
            var u = loaded.Tensors[name];
            Assert.Equal(t.dtype, u.dtype);
            Assert.Equal(t.shape, u.shape);
            Assert.Equal(Bytes(t), Bytes(u)); // bitwise: NaN, −0, subnormals, infinities
        }
        Assert.Empty(loaded.Tensors["scalar"].shape);
        Assert.Equal(2.75f, loaded.Tensors["scalar"].item<float>());
        Assert.Equal(meta, loaded.Metadata);
        Assert.Equal(meta, Checkpoint.ReadMetadata(path));
    }

    [Fact]
    public void Data_section_is_16_byte_aligned_and_the_header_is_plain_json()
    {
        // Names of every length 1..20 move the header length through all residues mod 16.
        for (int len = 1; len <= 20; len++)
        {
            var path = PathOf($"align{len}.safetensors");
            Checkpoint.Save(path, [(new string('x', len), torch.ones(3))]);
            var raw = File.ReadAllBytes(path);
            long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
            Assert.Equal(0, (8 + n) % 16);
            var header = Encoding.UTF8.GetString(raw, 8, (int)n);
            Assert.StartsWith("{", header);
            Assert.EndsWith("}", header.TrimEnd(' ')); // the JSON, then spaces only
            Assert.Equal(8 + n + 12, raw.LongLength); // 3 float32s after the header
        }
    }

    [Fact]
    public void Every_tensor_starts_at_a_multiple_of_its_element_size()
    {
        // Mixed sizes in an awkward order: 1-byte, 4-byte, 8-byte, 4-byte (odd count), 8-byte.
        var path = PathOf("mixed.safetensors");
        Checkpoint.Save(path,
        [
            ("m", torch.tensor(new[] { true, false, true })),
            ("f", torch.ones(3)),
            ("d", torch.ones(new long[] { 1 }, ScalarType.Float64)),
            ("g", torch.ones(5)),
            ("i", torch.tensor(new[] { 1L, 2L })),
        ]);
        var raw = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        using var doc = System.Text.Json.JsonDocument.Parse(raw.AsMemory(8, (int)n));
        var sizes = new Dictionary<string, int> { ["F64"] = 8, ["I64"] = 8, ["F32"] = 4, ["BOOL"] = 1 };
        var names = new List<string>();
        foreach (var e in doc.RootElement.EnumerateObject())
        {
            names.Add(e.Name);
            long begin = e.Value.GetProperty("data_offsets")[0].GetInt64();
            int size = sizes[e.Value.GetProperty("dtype").GetString()!];
            Assert.Equal(0, (8 + n + begin) % size);
        }
        Assert.Equal(new[] { "m", "f", "d", "g", "i" }, names); // the header keeps the caller's order
        Assert.Equal(names, Checkpoint.Load(path).Tensors.Keys);
        Assert.Equal(new[] { 1f, 1f, 1f, 1f, 1f }, Checkpoint.Load(path).Tensors["g"].data<float>().ToArray());
    }

    [Fact]
    public void Writer_output_is_byte_stable()
    {
        // A fixed set of tensors must give the same bytes forever: this file is the one
        // tests/reference/safetensors_check.py read (its output is recorded at the bottom of that script).
        var dir = Path.Combine(AppContext.BaseDirectory, "interop");
        var path = Path.Combine(dir, "csharp_written.safetensors");
        Checkpoint.Save(path,
        [
            ("transformer.wte.weight", torch.tensor(Enumerable.Range(0, 12).Select(i => i * 0.25f - 1f).ToArray(), [4, 3])),
            ("transformer.ln_f.bias", torch.tensor(new[] { 0.1f, -0.2f, 0.3f })),
            ("gold", torch.tensor(new[] { 1.3, 0.3, 0.0 }, [3], ScalarType.Float64)),
            ("prompt_ids", torch.tensor(new long[] { 0, 0, 1, 7, 10, 13, 12, 14 }, [1, 8])),
            ("loss_mask", torch.tensor(new[] { false, true, true, false })),
            ("step", torch.tensor(500L)),
        ], new Dictionary<string, string> { ["format"] = "pt", ["kit"] = "MinRL" });
        var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
        Assert.Equal("b116c76a7032ef321ce07564ce462a1c780969b8852e3632101be5ce5e32c897", sha);
    }

    [Fact]
    public void Save_replaces_atomically_and_leaves_no_temporary_file()
    {
        var path = PathOf("sub/dir/model.safetensors"); // the directory is created
        Checkpoint.Save(path, [("a", torch.ones(2))]);
        Checkpoint.Save(path, [("b", torch.zeros(3))]);
        Assert.Equal(new[] { "model.safetensors" }, Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
        Assert.Equal(new[] { "b" }, Checkpoint.Load(path).Tensors.Keys);

        // A save that fails at the rename (the target is a directory) cleans up its temporary file.
        var blocked = PathOf("blocked");
        Directory.CreateDirectory(blocked);
        Assert.ThrowsAny<Exception>(() => Checkpoint.Save(blocked, [("a", torch.ones(2))]));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFileSystemEntries(blocked));
    }

    [Fact]
    public void Save_rejects_bad_names_before_writing()
    {
        var path = PathOf("bad.safetensors");
        Assert.Contains("'a' is used by two tensors",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(path, [("a", torch.ones(1)), ("a", torch.ones(1))])).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => Checkpoint.Save(path, [("__metadata__", torch.ones(1))])).Message);
        Assert.Contains("empty name", Assert.Throws<ArgumentException>(() => Checkpoint.Save(path, [("", torch.ones(1))])).Message);
        Assert.Contains("metadata 'x' is null", Assert.Throws<ArgumentException>(() =>
            Checkpoint.Save(path, [("a", torch.ones(1))], new Dictionary<string, string> { ["x"] = null! })).Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void State_dict_overloads()
    {
        var path = PathOf("sd.safetensors");
        var sd = new Dictionary<string, torch.Tensor> { ["lm_head.weight"] = torch.tensor(new[] { 1f, 2f }), ["lm_head.bias"] = torch.tensor(new[] { 3f }) };
        Checkpoint.Save(path, sd);
        var target = new Dictionary<string, torch.Tensor> { ["lm_head.weight"] = torch.zeros(2), ["lm_head.bias"] = torch.zeros(1) };
        Checkpoint.LoadInto(path, target);
        Assert.Equal(new[] { 1f, 2f }, target["lm_head.weight"].data<float>().ToArray());
        Assert.Equal(new[] { 3f }, target["lm_head.bias"].data<float>().ToArray());
    }

    // ------------------------------------------------------------------ interop with Python

    [Fact]
    public void Python_written_fixture_loads()
    {
        // Written by `tests/reference/safetensors_check.py write`, laid out as the safetensors library
        // lays files out (8-byte aligned, data sorted by alignment then name, header keys in another order).
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "python_written.safetensors");
        var raw = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0, (8 + n) % 8);
        Assert.NotEqual(0, (8 + n) % 16); // the reader must not demand our stricter alignment

        var c = Checkpoint.Load(path);
        Assert.Equal(new[] { "bias", "empty", "ids", "mask", "pi", "weight" }, c.Tensors.Keys);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt", ["writer"] = "tests/reference/safetensors_check.py" }, c.Metadata);

        var w = c.Tensors["weight"];
        Assert.Equal(ScalarType.Float32, w.dtype);
        Assert.Equal(new long[] { 2, 3 }, w.shape);
        Assert.Equal(new[] { -1.5f, 0f, 0.1f, 3f, 1e-8f, -2.75f }, w.data<float>().ToArray());
        Assert.Equal(new[] { 0.5f, -0.25f, 100f }, c.Tensors["bias"].data<float>().ToArray());
        var pi = c.Tensors["pi"];
        Assert.Equal(ScalarType.Float64, pi.dtype);
        Assert.Empty(pi.shape);
        Assert.Equal(Math.PI, pi.item<double>());
        Assert.Equal(new[] { -3L, 0L, 7L, (1L << 40) + 1 }, c.Tensors["ids"].data<long>().ToArray());
        var mask = c.Tensors["mask"];
        Assert.Equal(ScalarType.Bool, mask.dtype);
        Assert.Equal(new long[] { 2, 2 }, mask.shape);
        Assert.Equal(new[] { true, false, false, true }, mask.data<bool>().ToArray());
        Assert.Equal(new long[] { 0, 3 }, c.Tensors["empty"].shape);
    }

    // ------------------------------------------------------------------ corrupt files

    /// <summary>Writes a file from a header (JSON text, padded to 8) and raw data bytes.</summary>
    private string Craft(string name, string header, byte[] data, long? claimedHeaderLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var padded = h.Concat(Enumerable.Repeat((byte)' ', (8 - h.Length % 8) % 8)).ToArray();
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(claimedHeaderLength ?? padded.Length));
        var path = PathOf(name);
        File.WriteAllBytes(path, [.. len, .. padded, .. data]);
        return path;
    }

    private static void AssertLoadFails(string path, params string[] parts)
    {
        var e = Assert.ThrowsAny<Exception>(() => Checkpoint.Load(path));
        Assert.Contains(path, e.Message);
        foreach (var part in parts) Assert.Contains(part, e.Message);
    }

    [Fact]
    public void Missing_file()
    {
        var path = PathOf("nope.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => Checkpoint.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Throws<FileNotFoundException>(() => Checkpoint.LoadInto(path, [("a", torch.zeros(1))]));
    }

    [Fact]
    public void Truncated_files()
    {
        var path = PathOf("ok.safetensors");
        Checkpoint.Save(path, [("first", torch.ones(4)), ("second", torch.ones(2, 2))]);
        var raw = File.ReadAllBytes(path);

        var cut = PathOf("cut.safetensors");
        File.WriteAllBytes(cut, raw[..^3]);
        AssertLoadFails(cut, "truncated", "'second'", "[16, 32)", "29 data bytes");

        File.WriteAllBytes(cut, raw[..5]);
        AssertLoadFails(cut, "truncated", "5 bytes");

        File.WriteAllBytes(cut, raw[..40]);
        AssertLoadFails(cut, "truncated", "header");
    }

    [Fact]
    public void Header_that_is_not_json_or_not_an_object()
    {
        AssertLoadFails(Craft("notjson.safetensors", "{\"a\": {\"dtype\": \"F32\", ", []), "not valid JSON");
        AssertLoadFails(Craft("array.safetensors", "[1, 2]", []), "JSON object", "Array");
        AssertLoadFails(Craft("huge.safetensors", "{}", [], claimedHeaderLength: 1L << 40), "header length", "limit");
        AssertLoadFails(Craft("dup.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
            new byte[8]), "'a' twice");
    }

    [Fact]
    public void Unknown_dtype_names_the_tensor_and_the_dtype()
        => AssertLoadFails(Craft("f16.safetensors", "{\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", new byte[4]),
            "'half'", "'F16'", "F32, F64, I64 and BOOL");

    [Fact]
    public void Size_mismatch_names_the_tensor_shape_and_bytes()
        => AssertLoadFails(Craft("size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", new byte[20]),
            "'w'", "[2, 3]", "24 bytes", "hold 20");

    [Fact]
    public void Offsets_out_of_range_overlapping_or_with_gaps()
    {
        AssertLoadFails(Craft("range.safetensors", "{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[8,24]}}", new byte[16]),
            "'w'", "[8, 24)", "16 data bytes");
        AssertLoadFails(Craft("overlap.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            new byte[12]), "'a'", "'b'", "overlap");
        AssertLoadFails(Craft("gap.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            new byte[12]), "[4, 8)", "'b'", "no tensor");
        AssertLoadFails(Craft("trailing.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[9]),
            "9 bytes", "only the first 4");
        AssertLoadFails(Craft("backwards.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", new byte[4]),
            "'a'", "end before they begin");
    }

    [Fact]
    public void Malformed_entries_and_values()
    {
        AssertLoadFails(Craft("negshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", []),
            "'a'", "non-negative");
        AssertLoadFails(Craft("noshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", []), "'a'", "shape");
        AssertLoadFails(Craft("nooffsets.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", []), "'a'", "data_offsets");
        AssertLoadFails(Craft("meta.safetensors", "{\"__metadata__\":{\"step\":5}}", []), "__metadata__", "'step'", "string");
        AssertLoadFails(Craft("bool.safetensors", "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", [1, 0, 2]),
            "'m'", "byte 2", "element 2");
    }

    // ------------------------------------------------------------------ loading into a model

    [Fact]
    public void LoadInto_copies_into_parameters()
    {
        var path = PathOf("model.safetensors");
        Checkpoint.Save(path, [("w", torch.tensor(new[] { 1f, 2f, 3f, 4f }, [2, 2])), ("b", torch.tensor(new[] { 0.5, -0.5 }, [2]))],
            new Dictionary<string, string> { ["step"] = "7" });
        var w = torch.zeros(2, 2).requires_grad_();
        var b = torch.zeros(2).requires_grad_(); // float32: the file's float64 is converted
        var result = Checkpoint.LoadInto(path, [("w", w), ("b", b)]);
        Assert.Equal(new[] { 1f, 2f, 3f, 4f }, w.data<float>().ToArray());
        Assert.Equal(new[] { 0.5f, -0.5f }, b.data<float>().ToArray());
        Assert.True(w.requires_grad);
        Assert.Empty(result.MissingKeys);
        Assert.Empty(result.UnexpectedKeys);
        Assert.Equal("7", result.Metadata["step"]);
    }

    [Fact]
    public void LoadInto_names_the_tensor_and_both_shapes_and_copies_nothing()
    {
        var path = PathOf("model.safetensors");
        Checkpoint.Save(path, [("a", torch.ones(3)), ("transformer.wpe.weight", torch.ones(16, 64))]);
        var a = torch.zeros(3);
        var wpe = torch.zeros(32, 64);
        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.LoadInto(path, [("a", a), ("transformer.wpe.weight", wpe)]));
        Assert.Contains(path, e.Message);
        Assert.Contains("'transformer.wpe.weight'", e.Message);
        Assert.Contains("[16, 64] in the file", e.Message);
        Assert.Contains("[32, 64] in the model", e.Message);
        Assert.Equal(new[] { 0f, 0f, 0f }, a.data<float>().ToArray()); // all or nothing
    }

    [Fact]
    public void LoadInto_strict_and_not()
    {
        var path = PathOf("model.safetensors");
        Checkpoint.Save(path, [("a", torch.ones(2)), ("value_head.weight", torch.ones(1))]);
        var a = torch.zeros(2);
        var lmHead = torch.zeros(3);

        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.LoadInto(path, [("a", a), ("lm_head.weight", lmHead)]));
        Assert.Contains(path, e.Message);
        Assert.Contains("missing from the file: lm_head.weight", e.Message);
        Assert.Contains("in the file but not in the model: value_head.weight", e.Message);
        Assert.Equal(new[] { 0f, 0f }, a.data<float>().ToArray());

        var r = Checkpoint.LoadInto(path, [("a", a), ("lm_head.weight", lmHead)], strict: false);
        Assert.Equal(new[] { "lm_head.weight" }, r.MissingKeys);
        Assert.Equal(new[] { "value_head.weight" }, r.UnexpectedKeys);
        Assert.Equal(new[] { 1f, 1f }, a.data<float>().ToArray());
        Assert.Equal(new[] { 0f, 0f, 0f }, lmHead.data<float>().ToArray());
    }
}
