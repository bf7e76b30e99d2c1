using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MinRL;

/// <summary>
/// The size of a <see cref="TinyGpt"/>. The defaults are the book's model: d_model 64, 2 layers, 4 heads,
/// a 12-token context, ~103k parameters, enough for the a+b= task.
/// </summary>
public sealed record GptConfig
{
    /// <summary>Number of token ids (the tokenizer's vocabulary).</summary>
    public int VocabSize { get; init; } = CharTokenizer.Instance.VocabSize;
    /// <summary>Longest sequence the position table covers (prompt + completion).</summary>
    public int BlockSize { get; init; } = ArithmeticTask.SequenceLength;
    /// <summary>Number of transformer blocks.</summary>
    public int NLayer { get; init; } = 2;
    /// <summary>Attention heads per block; NEmbd must be a multiple of it.</summary>
    public int NHead { get; init; } = 4;
    /// <summary>Width of the residual stream (d_model).</summary>
    public int NEmbd { get; init; } = 64;
    /// <summary>Adds a scalar head (a value function or a reward model) beside the LM head.</summary>
    public bool ScalarHead { get; init; } = false;

    /// <summary>A short stable description, used in cache keys and checkpoints' metadata.</summary>
    public string Key => $"v{VocabSize}-t{BlockSize}-l{NLayer}-h{NHead}-d{NEmbd}-s{(ScalarHead ? 1 : 0)}";
}

/// <summary>
/// A nanoGPT-shaped decoder-only transformer: token + learned position embeddings, pre-LayerNorm blocks
/// of causal multi-head self-attention and a 4×d GELU MLP, a final LayerNorm, an LM head, and an
/// optional scalar head.
/// </summary>
/// <remarks>
/// <para>Parameter names follow nanoGPT (<c>transformer.wte.weight</c>, <c>transformer.h.0.attn.c_attn.weight</c>,
/// ...), so a checkpoint maps one-to-one onto the PyTorch model in tests/reference. Unlike nanoGPT the LM
/// head is not tied to the token embedding and every Linear has a bias (as in the benchmark model of
/// tests/bench, whose PyTorch twin is tests/bench/torch_tinygpt.py).</para>
/// <para>Prompts are left-padded to one length, so all sequences in a batch share positions and no padding
/// mask is needed inside attention: a pad token is simply part of the context the model learned to ignore.</para>
/// </remarks>
public sealed class TinyGpt : nn.Module<Tensor, Tensor>
{
    public GptConfig Config { get; }

    private readonly Transformer transformer;
    private readonly Linear lm_head;
    private readonly Linear? scalar_head;

    public TinyGpt(GptConfig config) : base(nameof(TinyGpt))
    {
        if (config.NEmbd % config.NHead != 0)
            throw new ArgumentException(
                $"TinyGpt: NEmbd ({config.NEmbd}) must be a multiple of NHead ({config.NHead})");
        Config = config;
        transformer = new Transformer(config);
        lm_head = nn.Linear(config.NEmbd, config.VocabSize);
        if (config.ScalarHead) scalar_head = nn.Linear(config.NEmbd, 1);
        RegisterComponents();
        InitWeights();
    }

    /// <summary>nanoGPT's initialisation: every weight N(0, 0.02), biases 0, LayerNorms (1, 0), and the
    /// residual projections (c_proj) N(0, 0.02/√(2·n_layer)) so the residual stream's variance does not
    /// grow with depth (GPT-2 paper, §2.3).</summary>
    private void InitWeights()
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith(".bias")) nn.init.zeros_(p);
            else if (name.Contains(".ln_") || name.StartsWith("transformer.ln_f")) nn.init.ones_(p);
            else if (name.EndsWith("c_proj.weight")) nn.init.normal_(p, 0, 0.02 / Math.Sqrt(2 * Config.NLayer));
            else nn.init.normal_(p, 0, 0.02);
        }
    }

    /// <summary>Next-token logits for every position: (B, T) int64 ids → (B, T, vocab).</summary>
    public override Tensor forward(Tensor idx) => lm_head.call(Hidden(idx));

    /// <summary>The final hidden states (after ln_f): (B, T) ids → (B, T, C). With a cache, the ids are the
    /// next tokens after what the cache holds, and their keys and values are appended to it.</summary>
    public Tensor Hidden(Tensor idx, KVCache? cache = null)
    {
        if (idx.dtype != ScalarType.Int64 || idx.dim() != 2)
            throw new ArgumentException($"TinyGpt: expected int64 token ids of shape (B, T), got {idx.dtype} " +
                                        $"of shape [{string.Join(", ", idx.shape)}]");
        // Checked here because libtorch would answer both with an error from deep inside its kernels.
        var device = transformer.wte.weight!.device;
        if (idx.device.type != device.type)
            throw new ArgumentException($"TinyGpt: the token ids are on {idx.device} but the model is on {device}; " +
                                        "move them with .to(...) first");
        if (idx.numel() > 0)
        {
            long lo = idx.min().item<long>(), hi = idx.max().item<long>();
            if (lo < 0 || hi >= Config.VocabSize)
                throw new ArgumentException($"TinyGpt: token ids must be in 0..{Config.VocabSize - 1} " +
                                            $"(the vocabulary), got {lo}..{hi}");
        }
        long T = idx.shape[1];
        long start = cache?.Length ?? 0;
        if (start + T > Config.BlockSize)
            throw new ArgumentException($"TinyGpt: a sequence of {start + T} tokens is longer than " +
                                        $"the block size {Config.BlockSize}");
        var pos = arange(start, start + T, dtype: ScalarType.Int64);           // (T)
        var x = transformer.wte.call(idx) + transformer.wpe.call(pos);         // (B, T, C) + (T, C)
        for (int i = 0; i < transformer.h.Count; i++) x = transformer.h[i].Forward(x, cache?.Layer(i));
        if (cache is not null) cache.Length = start + T;
        return transformer.ln_f.call(x);                                       // (B, T, C)
    }

    /// <summary>Logits from hidden states: (B, T, C) → (B, T, vocab).</summary>
    public Tensor Logits(Tensor hidden) => lm_head.call(hidden);

    /// <summary>The scalar head on hidden states: (B, T, C) → (B, T). A value V(s_t) per position, or a
    /// reward read at the position of the last (EOS) token.</summary>
    public Tensor Scalar(Tensor hidden)
    {
        if (scalar_head is null)
            throw new InvalidOperationException(
                "TinyGpt: this model was built without a scalar head (GptConfig.ScalarHead = false)");
        return scalar_head.call(hidden).squeeze(-1);                           // (B, T)
    }

    /// <summary>
    /// Whether attention calls the engine's fused kernel, <c>F.scaled_dot_product_attention</c> (the default), or
    /// the formula written out with matmul, masked_fill and softmax. Same numbers up to rounding. Turn it off to
    /// differentiate twice (TRPO's Fisher-vector products): libtorch's fused CPU kernel has no double backward, and
    /// asking for one there ends the process (<c>derivative for _scaled_dot_product_flash_attention_for_cpu_backward
    /// is not implemented</c>) instead of throwing. MinTorch's fused kernel has one; the switch works on both.
    /// </summary>
    public bool FusedAttention
    {
        get => transformer.h.All(block => block.Attention.Fused);
        set { foreach (var block in transformer.h) block.Attention.Fused = value; }
    }

    /// <summary>A cache for generating up to BlockSize tokens for a batch of <paramref name="batch"/>
    /// sequences.</summary>
    public KVCache NewCache(long batch) =>
        new(Config, batch, transformer.wte.weight!.dtype, transformer.wte.weight!.device);

    public long NumParameters() => parameters().Sum(p => p.numel());

    // ------------------------------------------------------------------ the modules, named as in nanoGPT

    private sealed class Transformer : nn.Module
    {
        public readonly Embedding wte, wpe;
        public readonly ModuleList<Block> h;
        public readonly LayerNorm ln_f;
        public Transformer(GptConfig c) : base("transformer")
        {
            wte = nn.Embedding(c.VocabSize, c.NEmbd);
            wpe = nn.Embedding(c.BlockSize, c.NEmbd);
            h = new ModuleList<Block>(Enumerable.Range(0, c.NLayer).Select(_ => new Block(c)).ToArray());
            ln_f = nn.LayerNorm(c.NEmbd);
            RegisterComponents();
        }
    }

    /// <summary>x + attn(ln_1(x)), then x + mlp(ln_2(x)): the pre-LN residual block.</summary>
    internal sealed class Block : nn.Module
    {
        // Declared in nanoGPT's order, so parameters() (and parameters_to_vector) line up with PyTorch's.
        private readonly LayerNorm ln_1;
        private readonly CausalSelfAttention attn;
        private readonly LayerNorm ln_2;
        public CausalSelfAttention Attention => attn;
        private readonly Mlp mlp;
        public Block(GptConfig c) : base("block")
        {
            ln_1 = nn.LayerNorm(c.NEmbd);
            attn = new CausalSelfAttention(c);
            ln_2 = nn.LayerNorm(c.NEmbd);
            mlp = new Mlp(c);
            RegisterComponents();
        }
        public Tensor Forward(Tensor x, KVCache.LayerCache? cache)
        {
            x = x + Branch(() => attn.Forward(ln_1.call(x), cache));   // (B, T, C)
            return x + Branch(() => mlp.call(ln_2.call(x)));            // (B, T, C)
        }

        // TorchSharp frees a tensor when its dispose scope ends, not when its last reference goes (PyTorch's
        // reference counting): without this, a forward would keep every intermediate (the layer norms, q, k, v,
        // the MLP's 4C-wide hidden) until the caller's scope ends. A scope per residual branch frees them as soon as
        // the branch is done; what backward needs stays alive, because autograd holds its own references. With the
        // per-token scope of Rollouts.Generate, this took chapter 2's peak on TorchSharp from 585 to 407 MiB (its λ
        // table runs 2,048 rows at once). A no-op on MinTorch, whose tensors go when the GC finds them unreachable.
        private static Tensor Branch(Func<Tensor> branch)
        {
            using var scope = NewDisposeScope();
            return branch().MoveToOuterDisposeScope();
        }
    }

    /// <summary>
    /// Multi-head causal self-attention: q, k, v = x W_qkv split into H heads of size D = C/H;
    /// y = softmax(q kᵀ/√D + causal mask) v per head; heads concatenated and projected by c_proj.
    /// </summary>
    internal sealed class CausalSelfAttention : nn.Module
    {
        private readonly Linear c_attn, c_proj;
        private readonly int nHead, nEmbd;
        /// <summary>See <see cref="TinyGpt.FusedAttention"/>.</summary>
        public bool Fused { get; set; } = true;
        public CausalSelfAttention(GptConfig c) : base("attn")
        {
            nHead = c.NHead; nEmbd = c.NEmbd;
            c_attn = nn.Linear(c.NEmbd, 3 * c.NEmbd);
            c_proj = nn.Linear(c.NEmbd, c.NEmbd);
            RegisterComponents();
        }

        public Tensor Forward(Tensor x, KVCache.LayerCache? cache)
        {
            long B = x.shape[0], T = x.shape[1], C = nEmbd, H = nHead, D = C / H;
            // q, k, v = x W_qkvᵀ + b_qkv split in three (nanoGPT keeps the three projections in one c_attn).
            // MinTorch's narrow copies (PyTorch's is a view), so split whichever is smaller: the (3C, C)
            // weight, as three projections (training, long prompts: no activation-sized copies, nor their
            // gradients), or the (B, T, 3C) output (a generation step, where B·T < C).
            Tensor q, k, v;
            if (B * T >= C)
            {
                Tensor Project(long i) =>
                    F.linear(x, c_attn.weight.narrow(0, i * C, C), c_attn.bias!.narrow(0, i * C, C));
                (q, k, v) = (Project(0), Project(1), Project(2));                 // (B, T, C) each
            }
            else
            {
                var qkv = c_attn.call(x);                                          // (B, T, 3C)
                (q, k, v) = (qkv.narrow(-1, 0, C), qkv.narrow(-1, C, C), qkv.narrow(-1, 2 * C, C));
            }
            q = q.view(B, T, H, D).transpose(1, 2);                                // (B, H, T, D)
            k = k.view(B, T, H, D).transpose(1, 2);                                // (B, H, T, D)
            v = v.view(B, T, H, D).transpose(1, 2);                                // (B, H, T, D)
            Tensor y;
            if (cache is null && Fused)
            {
                y = F.scaled_dot_product_attention(q, k, v, is_casual: true);     // (B, H, T, D)
            }
            else if (cache is null)
            {
                // The same attention written out, for a double backward (see TinyGpt.FusedAttention).
                var causal = ones(T, T, dtype: ScalarType.Bool).tril();                           // (T, T): j ≤ i
                var att = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(D);                           // (B, H, T, T)
                att = att.masked_fill(causal.logical_not(), double.NegativeInfinity);
                y = att.softmax(-1).matmul(v);                                                    // (B, H, T, D)
            }
            else
            {
                // Generation: write this step's keys and values into the cache, then attend over the whole
                // preallocated buffers with a mask: new query i (absolute position start + i) may see keys
                // 0 .. start + i, and the unfilled rest of the buffers is hidden. (No copy of the cache: in
                // MinTorch, narrow would copy; sdpa skips the keys that no query may see.)
                long start = cache.Owner.Length;
                var (keys, values) = cache.Append(k, v, start);                    // (B, H, BlockSize, D) each
                var mask = ones(T, keys.shape[2], dtype: ScalarType.Bool).tril(start);           // (T, BlockSize)
                y = F.scaled_dot_product_attention(q, keys, values, attn_mask: mask);             // (B, H, T, D)
            }
            y = y.transpose(1, 2).reshape(B, T, C);                                // (B, T, C): heads side by side
            return c_proj.call(y);                                                 // (B, T, C)
        }
    }

    /// <summary>The position-wise MLP: C → 4C, exact GELU, 4C → C.</summary>
    internal sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_fc, c_proj;
        public Mlp(GptConfig c) : base("mlp")
        {
            c_fc = nn.Linear(c.NEmbd, 4 * c.NEmbd);
            c_proj = nn.Linear(4 * c.NEmbd, c.NEmbd);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) => c_proj.call(F.gelu(c_fc.call(x)));   // (B, T, C)
    }
}

/// <summary>
/// Keys and values of every layer for the tokens generated so far, so each new token costs one position's
/// worth of compute instead of re-running the whole prefix (generation is O(T) per token, not O(T²)).
/// </summary>
public sealed class KVCache
{
    private readonly LayerCache[] _layers;
    /// <summary>How many positions the cache holds.</summary>
    public long Length { get; internal set; }
    public long Batch { get; }

    internal KVCache(GptConfig c, long batch, ScalarType dtype, Device device)
    {
        Batch = batch;
        _layers = Enumerable.Range(0, c.NLayer)
            .Select(_ => new LayerCache(this, batch, c.NHead, c.BlockSize, c.NEmbd / c.NHead, dtype, device)).ToArray();
    }

    internal LayerCache Layer(int i) => _layers[i];

    /// <summary>One layer's keys and values, preallocated for the whole block: (B, H, BlockSize, D), zeros
    /// until written. Allocated here, when the cache is made, so that they belong to the caller's dispose scope
    /// and outlive the per-token scopes of a generation loop.</summary>
    internal sealed class LayerCache
    {
        public readonly KVCache Owner;
        private readonly long _b;
        private readonly Tensor _k, _v;
        public LayerCache(KVCache owner, long b, long h, long t, long d, ScalarType dtype, Device device)
        {
            Owner = owner;
            _b = b;
            _k = zeros(new[] { b, h, t, d }, dtype: dtype, device: device);
            _v = zeros(new[] { b, h, t, d }, dtype: dtype, device: device);
        }

        /// <summary>Writes k, v (B, H, T, D) at positions start.., returns the whole buffers (B, H, BlockSize, D):
        /// positions from start + T on are zeros, for the caller to mask out.</summary>
        public (Tensor keys, Tensor values) Append(Tensor k, Tensor v, long start)
        {
            if (k.shape[0] != _b)
                throw new ArgumentException($"KVCache: the cache was made for a batch of {_b}, got {k.shape[0]}");
            long T = k.shape[2];
            using (no_grad())
            {
                _k.index_put_(k, TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(start, start + T));
                _v.index_put_(v, TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(start, start + T));
            }
            return (_k, _v);
        }
    }
}
