using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class ModuleTests
{
    // ------------------------------------------------------------------ hand-built modules (elementwise ops only)

    /// <summary>y = x·weight + bias, with a persistent and a non-persistent buffer.</summary>
    sealed class Affine : nn.Module<Tensor, Tensor>
    {
        public Parameter weight;
        public Parameter bias;
        private readonly Tensor running;       // a buffer, registered from its field
        public Affine(long n, float w = 1) : base(nameof(Affine))
        {
            weight = new Parameter(full(n, w));
            bias = new Parameter(zeros(n));
            running = zeros(n);
            RegisterComponents();
            register_buffer("mask", ones(n), persistent: false);
        }
        public Tensor Running => running;
        public override Tensor forward(Tensor x) => x * weight + bias;
    }

    sealed class Block : nn.Module<Tensor, Tensor>
    {
        public readonly Affine attn;
        public readonly Affine mlp;
        public readonly Dropout drop = nn.Dropout(0.0);
        public Block(long n) : base(nameof(Block))
        {
            attn = new Affine(n, 2);
            mlp = new Affine(n, 3);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) => mlp.call(drop.call(attn.call(x)));
    }

    sealed class Net : nn.Module<Tensor, Tensor>
    {
        public Parameter wte { get; }                 // auto-property: registered as "wte"
        public readonly ModuleList<Block> h;
        [ComponentName(Name = "ln_f")] private readonly Affine _final;
        public Net(long n, int layers) : base(nameof(Net))
        {
            wte = new Parameter(ones(n));
            h = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new Block(n)).ToArray());
            _final = new Affine(n);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x)
        {
            x = x * wte;
            foreach (var b in h) x = b.call(x);
            return _final.call(x);
        }
    }

    [Fact]
    public void Parameters_are_named_with_dots_in_declaration_order()
    {
        var net = new Net(3, 2);
        var names = net.named_parameters().Select(np => np.name).ToArray();
        Assert.Equal(new[]
        {
            "wte",
            "h.0.attn.weight", "h.0.attn.bias", "h.0.mlp.weight", "h.0.mlp.bias",
            "h.1.attn.weight", "h.1.attn.bias", "h.1.mlp.weight", "h.1.mlp.bias",
            "ln_f.weight", "ln_f.bias",
        }, names);
        Assert.Equal(11, net.parameters().Count());
        Assert.Equal(new[] { "wte" }, net.named_parameters(recurse: false).Select(np => np.name));
        Assert.Same(net.h[1].mlp.bias, net.get_parameter("h.1.mlp.bias"));
    }

    [Fact]
    public void Children_modules_and_buffers_are_listed()
    {
        var net = new Net(2, 2);
        Assert.Equal(new[] { "h", "ln_f" }, net.named_children().Select(c => c.name));
        Assert.Equal(new[] { "h", "ln_f", "h.0", "h.1", "h.0.attn", "h.0.mlp", "h.0.drop", "h.1.attn", "h.1.mlp", "h.1.drop" },
            net.named_modules().Select(m => m.name));
        Assert.Equal(new[] { "h.0.attn.running", "h.0.attn.mask", "h.0.mlp.running", "h.0.mlp.mask", "h.1.attn.running", "h.1.attn.mask",
                             "h.1.mlp.running", "h.1.mlp.mask", "ln_f.running", "ln_f.mask" },
            net.named_buffers().Select(b => b.name));
        Assert.Equal(5, net.buffers(include_nonpersistent: false).Count());
    }

    [Fact]
    public void State_dict_holds_parameters_and_persistent_buffers_in_pytorch_order()
    {
        var sd = new Net(2, 1).state_dict();
        Assert.Equal(new[]
        {
            "wte",
            "h.0.attn.weight", "h.0.attn.bias", "h.0.attn.running",
            "h.0.mlp.weight", "h.0.mlp.bias", "h.0.mlp.running",
            "ln_f.weight", "ln_f.bias", "ln_f.running",
        }, sd.Keys);
    }

    [Fact]
    public void State_dict_round_trip_copies_values_into_the_existing_tensors()
    {
        var a = new Net(3, 2);
        using (no_grad())
        {
            a.h[1].attn.weight.mul_(5);
            a.h[0].mlp.Running.add_(7);
        }
        var b = new Net(3, 2);
        var weightBefore = b.h[1].attn.weight;
        var (missing, unexpected) = b.load_state_dict(a.state_dict());
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        Assert.Same(weightBefore, b.h[1].attn.weight);                 // loaded in place
        Assert.Equal(new float[] { 10, 10, 10 }, b.h[1].attn.weight.data<float>().ToArray());
        Assert.Equal(new float[] { 7, 7, 7 }, b.h[0].mlp.Running.data<float>().ToArray());
        // Copies, not shared storage: changing a does not change b.
        using (no_grad()) a.h[1].attn.weight.zero_();
        Assert.Equal(10f, b.h[1].attn.weight.data<float>()[0]);
        var x = tensor(new float[] { 1, 2, 3 });
        using (no_grad()) a.h[1].attn.weight.fill_(10);
        Assert.Equal(a.call(x).data<float>().ToArray(), b.call(x).data<float>().ToArray());
    }

    [Fact]
    public void Load_state_dict_converts_dtype()
    {
        var net = new Net(2, 1);
        var sd = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float64) * 2);
        net.load_state_dict(sd);
        Assert.Equal(ScalarType.Float32, net.wte.dtype);
        Assert.Equal(new float[] { 2, 2 }, net.wte.data<float>().ToArray());
    }

    [Fact]
    public void Strict_load_names_missing_and_unexpected_keys()
    {
        var net = new Net(2, 1);
        var sd = net.state_dict();
        sd.Remove("h.0.mlp.bias");
        sd["h.0.extra"] = zeros(2);
        var ex = Assert.Throws<InvalidOperationException>(() => net.load_state_dict(sd));
        Assert.Contains("load_state_dict", ex.Message);
        Assert.Contains("\"h.0.mlp.bias\"", ex.Message);
        Assert.Contains("\"h.0.extra\"", ex.Message);
        Assert.Contains("missing", ex.Message);
        Assert.Contains("unexpected", ex.Message);

        var (missing, unexpected) = net.load_state_dict(sd, strict: false);
        Assert.Equal(new[] { "h.0.mlp.bias" }, missing);
        Assert.Equal(new[] { "h.0.extra" }, unexpected);
    }

    [Fact]
    public void Shape_mismatch_names_the_key_and_both_shapes()
    {
        var net = new Net(3, 1);
        var sd = net.state_dict();
        sd["ln_f.weight"] = zeros(4, 2);
        foreach (var strict in new[] { true, false })
        {
            var ex = Assert.Throws<InvalidOperationException>(() => net.load_state_dict(sd, strict));
            Assert.Contains("ln_f.weight", ex.Message);
            Assert.Contains("[4, 2]", ex.Message);
            Assert.Contains("[3]", ex.Message);
        }
        Assert.Equal(new float[] { 1, 1, 1 }, net.get_parameter("ln_f.weight")!.data<float>().ToArray()); // nothing was loaded
    }

    [Fact]
    public void Train_and_eval_reach_every_descendant()
    {
        var net = new Net(2, 2);
        Assert.True(net.training);
        net.eval();
        Assert.All(net.modules().Prepend(net), m => Assert.False(m.training));
        net.h[0].train();
        Assert.True(net.h[0].attn.training);
        Assert.False(net.h[1].attn.training);
        net.train();
        Assert.All(net.modules().Prepend(net), m => Assert.True(m.training));
    }

    [Fact]
    public void Zero_grad_sets_gradients_to_null()
    {
        var net = new Net(3, 2);
        net.call(tensor(new float[] { 1, 2, 3 })).sum().backward();
        Assert.All(net.parameters(), p => Assert.NotNull(p.grad));
        Assert.Equal(new float[] { 36, 72, 108 }, net.wte.grad!.data<float>().ToArray()); // (2·3)² = 36 per unit of x

        net.zero_grad(set_to_none: false);
        Assert.All(net.parameters(), p => Assert.All(p.grad!.data<float>().ToArray(), v => Assert.Equal(0f, v)));
        net.zero_grad();
        Assert.All(net.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void Tied_parameters_are_listed_once_but_saved_under_every_name()
    {
        var a = new Affine(2);
        var pair = new Pair(a, new Tied(a.weight));
        Assert.Equal(new[] { "a.weight", "a.bias" }, pair.named_parameters().Select(np => np.name));
        Assert.Equal(new[] { "a.weight", "a.bias", "a.running", "t.w" }, pair.state_dict().Keys);
    }

    sealed class Tied : nn.Module
    {
        public readonly Parameter w;
        public Tied(Parameter w) : base(nameof(Tied)) { this.w = w; RegisterComponents(); }
    }

    sealed class Pair : nn.Module
    {
        public readonly Affine a;
        public readonly Tied t;
        public Pair(Affine a, Tied t) : base(nameof(Pair)) { this.a = a; this.t = t; RegisterComponents(); }
    }

    [Fact]
    public void Register_components_is_idempotent_and_children_register_themselves()
    {
        var m = new Lazy(); // forgets RegisterComponents in the child, calls it twice in itself
        Assert.Equal(new[] { "inner.w" }, m.named_parameters().Select(np => np.name));
    }

    sealed class NoRegister : nn.Module
    {
        public readonly Parameter w = new(ones(1));
        public NoRegister() : base(nameof(NoRegister)) { }
    }

    sealed class Lazy : nn.Module
    {
        public readonly NoRegister inner = new();
        public Lazy() : base(nameof(Lazy)) { RegisterComponents(); RegisterComponents(); }
    }

    [Fact]
    public void Registration_errors_name_the_problem()
    {
        var m = new Affine(1);
        Assert.Contains("already registered", Assert.Throws<InvalidOperationException>(() => m.register_parameter("weight", new Parameter(ones(1)))).Message);
        Assert.Contains("\".\"", Assert.Throws<ArgumentException>(() => m.register_buffer("a.b", ones(1))).Message);
        m.register_module("x", nn.Dropout());
        Assert.Contains("'x'", Assert.Throws<InvalidOperationException>(() => m.register_module("x", nn.Dropout())).Message);
    }

    [Fact]
    public void Module_list_tracks_additions_and_removals()
    {
        var list = nn.ModuleList(new Affine(1), new Affine(1));
        list.Add(new Affine(1, 5));
        Assert.Equal(new[] { "0", "1", "2" }, list.named_children().Select(c => c.name));
        list.RemoveAt(0);
        Assert.Equal(new[] { "0.weight", "0.bias", "1.weight", "1.bias" }, list.named_parameters().Select(np => np.name));
        Assert.Equal(5f, list.get_parameter("1.weight")!.data<float>()[0]);
        Assert.Equal(2, list.Count);
    }

    [Fact]
    public void Sequential_chains_and_names_its_modules()
    {
        var seq = nn.Sequential(new Affine(2, 2), new Affine(2, 3));
        Assert.Equal(new[] { "0.weight", "0.bias", "1.weight", "1.bias" }, seq.named_parameters().Select(np => np.name));
        Assert.Equal(new float[] { 6, 12 }, seq.call(tensor(new float[] { 1, 2 })).data<float>().ToArray());
        var named = nn.Sequential(("first", (nn.Module<Tensor, Tensor>)new Affine(1)), ("second", new Affine(1)));
        Assert.Equal(new[] { "first", "second" }, named.named_children().Select(c => c.name));
    }

    [Fact]
    public void Module_to_converts_parameters_in_place()
    {
        var net = new Net(2, 1);
        var w = net.wte;
        net.to(ScalarType.Float64);
        Assert.Same(w, net.wte);
        Assert.Equal(ScalarType.Float64, w.dtype);
        Assert.Equal(ScalarType.Float64, net.h[0].attn.Running.dtype);
        Assert.Equal(ScalarType.Float64, net.call(ones(2, dtype: ScalarType.Float64)).dtype);
        Assert.Throws<InvalidOperationException>(() => net.to(CUDA));
    }

    [Fact]
    public void Parameter_shares_storage_and_is_a_leaf()
    {
        var t = tensor(new float[] { 1, 2 }, requires_grad: true);
        var y = t * 2;
        var p = new Parameter(y);
        Assert.True(p.is_leaf);
        Assert.True(p.requires_grad);
        Assert.False(new Parameter(ones(1), requires_grad: false).requires_grad);
        using (no_grad()) p.add_(1);
        Assert.Equal(new float[] { 3, 5 }, y.data<float>().ToArray()); // same storage
        (p * p).sum().backward();
        Assert.Equal(new float[] { 6, 10 }, p.grad!.data<float>().ToArray());
        Assert.Null(t.grad);                                             // the graph before p is cut
    }

    // ------------------------------------------------------------------ Dropout

    [Fact]
    public void Dropout_is_identity_in_eval_and_with_p_zero()
    {
        var x = randn(100);
        var d = nn.Dropout(0.5);
        d.eval();
        Assert.Same(x, d.call(x));
        Assert.Same(x, nn.Dropout(0.0).call(x));
    }

    [Fact]
    public void Dropout_in_training_zeroes_about_p_and_scales_the_rest()
    {
        manual_seed(3);
        var x = ones(20000, requires_grad: true);
        var y = nn.Dropout(0.25).call(x);
        var v = y.data<float>().ToArray();
        Assert.All(v, e => Assert.True(e == 0 || Math.Abs(e - 1 / 0.75f) < 1e-6, $"unexpected value {e}"));
        double zeroFraction = v.Count(e => e == 0) / 20000.0;
        Assert.InRange(zeroFraction, 0.24, 0.26);   // sd of the fraction ≈ 0.003
        y.sum().backward();
        Assert.Equal(v, x.grad!.data<float>().ToArray()); // ∂y/∂x = mask / (1 − p)
    }

    [Fact]
    public void Dropout_draws_from_the_default_generator()
    {
        manual_seed(11);
        var a = nn.Dropout(0.5).call(ones(64)).data<float>().ToArray();
        manual_seed(11);
        var b = nn.Dropout(0.5).call(ones(64)).data<float>().ToArray();
        Assert.Equal(a, b);
    }

    // ------------------------------------------------------------------ torch.nn.init

    static double Std(Tensor t)
    {
        var v = t.to_type(ScalarType.Float64).data<double>().ToArray();
        double m = v.Average();
        return Math.Sqrt(v.Sum(e => (e - m) * (e - m)) / (v.Length - 1));
    }

    [Fact]
    public void Normal_init_has_the_requested_mean_and_std()
    {
        manual_seed(1);
        var t = nn.init.normal_(empty(40000), mean: 2, std: 0.5);
        Assert.Equal(2.0, t.mean().item<float>(), 0.01);    // sd of the mean = 0.0025
        Assert.Equal(0.5, Std(t), 0.01);
    }

    [Fact]
    public void Uniform_init_stays_in_range_with_the_right_mean_and_std()
    {
        manual_seed(2);
        var t = nn.init.uniform_(empty(40000, dtype: ScalarType.Float64), -3, 1);
        var v = t.data<double>().ToArray();
        Assert.True(v.Min() >= -3 && v.Max() <= 1);
        Assert.Equal(-1.0, v.Average(), 0.02);              // sd of the mean ≈ 0.006
        Assert.Equal(4 / Math.Sqrt(12), Std(t), 0.01);
    }

    [Fact]
    public void Init_uses_the_given_generator()
    {
        var a = nn.init.normal_(empty(5), generator: new Generator(4)).data<float>().ToArray();
        var b = nn.init.normal_(empty(5), generator: new Generator(4)).data<float>().ToArray();
        Assert.Equal(a, b);
    }

    [Fact]
    public void Kaiming_uniform_with_sqrt5_gives_linear_bound_one_over_sqrt_fan_in()
    {
        manual_seed(5);
        var w = nn.init.kaiming_uniform_(empty(64, 100), a: Math.Sqrt(5));
        var v = w.data<float>().ToArray();
        Assert.True(v.Max() <= 0.1f && v.Min() >= -0.1f);
        Assert.True(v.Max() > 0.099f && v.Min() < -0.099f);
        Assert.Equal(0.1 / Math.Sqrt(3), Std(w), 0.002);
        Assert.Equal((100L, 64L), nn.init.CalculateFanInAndFanOut(w));
    }

    [Fact]
    public void Xavier_and_constant_inits()
    {
        manual_seed(6);
        var w = nn.init.xavier_uniform_(empty(30, 20), gain: 2);
        double bound = 2 * Math.Sqrt(6.0 / 50);
        Assert.True(w.data<float>().ToArray().All(e => Math.Abs(e) <= bound));
        Assert.Equal(new float[] { 1, 1 }, nn.init.ones_(empty(2)).data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0 }, nn.init.zeros_(ones(2)).data<float>().ToArray());
        Assert.Equal(new float[] { 2.5f, 2.5f }, nn.init.constant_(empty(2), 2.5).data<float>().ToArray());
        Assert.Equal(new float[] { 1, 0, 0, 0, 1, 0 }, nn.init.eye_(empty(2, 3)).data<float>().ToArray());
        Assert.Equal(Math.Sqrt(2.0), nn.init.calculate_gain(nn.init.NonlinearityType.ReLU), 1e-15);
        Assert.Contains("fewer than 2 dimensions", Assert.Throws<ArgumentException>(() => nn.init.xavier_uniform_(empty(3))).Message);
    }

    [Fact]
    public void Init_works_on_parameters_that_require_grad()
    {
        var p = new Parameter(empty(3));
        nn.init.ones_(p);
        nn.init.normal_(p);
        Assert.True(p.requires_grad && p.is_leaf);
        Assert.Null(p.grad);
    }

    // ------------------------------------------------------------------ Embedding

    [Fact]
    public void Embedding_looks_up_rows_for_ids_of_any_shape()
    {
        var emb = nn.Embedding(4, 3);
        using (no_grad()) emb.weight.copy_(arange(12).reshape(4, 3).to_type(ScalarType.Float32));
        var ids = tensor(new long[] { 3, 0, 3, 1, 2, 2 }, new long[] { 2, 3 });
        var y = emb.call(ids);
        Assert.Equal(new long[] { 2, 3, 3 }, y.shape);
        Assert.Equal(new float[] { 9, 10, 11, 0, 1, 2, 9, 10, 11, 3, 4, 5, 6, 7, 8, 6, 7, 8 }, y.data<float>().ToArray());
        Assert.Equal(new long[] { 3 }, emb.call(tensor(2L)).shape);   // a 0-D id gives one vector
        Assert.Equal(new[] { "weight" }, emb.named_parameters().Select(np => np.name));
    }

    [Fact]
    public void Embedding_gradient_sums_over_repeated_ids()
    {
        var emb = nn.Embedding(4, 2);
        var ids = tensor(new long[] { 1, 3, 1, 1 });
        var w = tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, new long[] { 4, 2 });
        (emb.call(ids) * w).sum().backward();
        // row 1 gets rows 0, 2, 3 of w; row 3 gets row 1; rows 0 and 2 get nothing.
        Assert.Equal(new float[] { 0, 0, 1 + 5 + 7, 2 + 6 + 8, 0, 0, 3, 4 }, emb.weight.grad!.data<float>().ToArray());
    }

    [Fact]
    public void Embedding_gradcheck_first_and_second_order()
    {
        var emb = nn.Embedding(5, 3, dtype: ScalarType.Float64);
        var ids = tensor(new long[] { 4, 0, 4, 2, 1, 4 }, new long[] { 3, 2 });
        GradCheck.Check(x => emb.call(ids) * 1.5, emb.weight);
        GradCheck.CheckSecondOrder(x => emb.call(ids).pow(3.0), emb.weight);
    }

    [Fact]
    public void Embedding_is_initialised_from_a_standard_normal()
    {
        manual_seed(21);
        var emb = nn.Embedding(200, 100);
        Assert.Equal(0.0, emb.weight.mean().item<float>(), 0.02);   // sd of the mean = 0.005
        Assert.Equal(1.0, Std(emb.weight), 0.02);
        manual_seed(21);
        Assert.Equal(emb.weight.data<float>().ToArray(), nn.Embedding(200, 100).weight.data<float>().ToArray());
    }

    [Fact]
    public void Embedding_rejects_bad_ids_with_clear_messages()
    {
        var emb = nn.Embedding(4, 2);
        Assert.Contains("int64", Assert.Throws<ArgumentException>(() => emb.call(ones(3))).Message);
        var ex = Assert.ThrowsAny<Exception>(() => emb.call(tensor(new long[] { 0, 4 })));
        Assert.Contains("4", ex.Message);
        Assert.Throws<NotSupportedException>(() => nn.Embedding(4, 2, padding_idx: 0));
    }

    [Fact]
    public void Embedding_from_pretrained_shares_and_freezes_the_table()
    {
        var table = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        var emb = nn.Embedding_from_pretrained(table);
        Assert.False(emb.weight.requires_grad);
        Assert.Equal(new float[] { 3, 4 }, emb.call(tensor(new long[] { 1 })).data<float>().ToArray());
        Assert.True(nn.Embedding_from_pretrained(table, freeze: false).weight.requires_grad);
    }
    // ------------------------------------------------------------------ Linear, LayerNorm, GELU

    [Fact]
    public void Linear_forward_matches_pytorch()
    {
        var lin = nn.Linear(3, 2);
        using (no_grad())
        {
            lin.weight.copy_(tensor(new float[] { 0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f }, new long[] { 2, 3 }));
            lin.bias!.copy_(tensor(new float[] { 0.05f, -0.1f }));
        }
        var y = lin.call(tensor(new float[] { 0.5f, -1, 2, 1.5f, 0.25f, -0.75f }, new long[] { 2, 3 }));
        Assert.Equal(new long[] { 2, 2 }, y.shape);
        // torch.nn.functional.linear(x, W, b) in PyTorch 1.13
        AssertClose(new[] { 9.000000358e-01f, -1.600000024e+00f, -7.500000298e-02f, 1.075000048e+00f }, y, 1e-6);
        Assert.Equal(new[] { "weight", "bias" }, lin.named_parameters().Select(np => np.name));
        Assert.Equal((3L, 2L), (lin.in_features, lin.out_features));
        Assert.Equal(new[] { "weight" }, nn.Linear(3, 2, hasBias: false).named_parameters().Select(np => np.name));
    }

    [Fact]
    public void Linear_init_is_uniform_within_one_over_sqrt_fan_in()
    {
        manual_seed(8);
        var lin = nn.Linear(64, 300);
        var w = lin.weight.data<float>().ToArray();
        var b = lin.bias!.data<float>().ToArray();
        Assert.Equal(new long[] { 300, 64 }, lin.weight.shape);
        Assert.True(w.All(v => Math.Abs(v) <= 0.125f) && b.All(v => Math.Abs(v) <= 0.125f));
        Assert.True(w.Max() > 0.124f && w.Min() < -0.124f);
        Assert.Equal(0.125 / Math.Sqrt(3), Std(lin.weight), 0.002);
        manual_seed(8);
        var again = nn.Linear(64, 300);
        Assert.Equal(w, again.weight.data<float>().ToArray());
        Assert.Equal(b, again.bias!.data<float>().ToArray());
    }

    [Fact]
    public void Linear_gradcheck_first_and_second_order()
    {
        var lin = nn.Linear(4, 3, dtype: ScalarType.Float64);
        var x = GradCheck.Input([2, 5, 4], 31);
        GradCheck.Check(xs => lin.call(xs[0]), x, lin.weight, lin.bias!);
        GradCheck.CheckSecondOrder(xs => lin.call(xs[0]).tanh(), x, lin.weight, lin.bias!);
    }

    [Fact]
    public void LayerNorm_forward_matches_pytorch()
    {
        var ln = nn.LayerNorm(4);
        Assert.Equal(new float[] { 1, 1, 1, 1 }, ln.weight.data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0, 0, 0 }, ln.bias!.data<float>().ToArray());
        using (no_grad())
        {
            ln.weight.copy_(tensor(new float[] { 1, 0.5f, -2, 1.5f }));
            ln.bias!.copy_(tensor(new float[] { 0, 0.1f, 0.2f, -0.3f }));
        }
        var x = tensor(new float[] { 1, 2, 4, -1, 0.5f, 0.5f, 0.5f, 3 }, new long[] { 2, 4 });
        // torch.nn.functional.layer_norm(x, [4], w, b, 1e-5) in PyTorch 1.13
        AssertClose(new[] { -2.773496509e-01f, 2.386748493e-01f, -2.573496819e+00f, -2.380122423e+00f, -5.773477554e-01f, -1.886738837e-01f, 1.354695559e+00f, 2.298065186e+00f },
            ln.call(x), 1e-5);
        var plain = nn.LayerNorm(4, eps: 1e-3, elementwise_affine: false);
        Assert.Empty(plain.parameters());
        AssertClose(new[] { -2.773074508e-01f, 2.773074508e-01f, 1.386537313e+00f, -1.386537313e+00f, -5.771040916e-01f, -5.771040916e-01f, -5.771040916e-01f, 1.731312275e+00f },
            plain.call(x), 1e-5);
    }

    [Fact]
    public void LayerNorm_gradcheck_first_and_second_order()
    {
        var ln = nn.LayerNorm(5, dtype: ScalarType.Float64);
        using (no_grad())
        {
            ln.weight.copy_(GradCheck.Input([5], 41).detach());
            ln.bias!.copy_(GradCheck.Input([5], 42).detach());
        }
        var x = GradCheck.Input([3, 2, 5], 43);
        GradCheck.Check(xs => ln.call(xs[0]), x, ln.weight, ln.bias!);
        GradCheck.CheckSecondOrder(xs => ln.call(xs[0]), x, ln.weight, ln.bias!);
    }

    [Fact]
    public void GELU_module_matches_pytorch()
    {
        var y = nn.GELU().call(tensor(new float[] { -3, -1, -0.1f, 0, 0.5f, 2 }));
        // torch.nn.GELU() (exact, erf form) in PyTorch 1.13, computed in float64: PyTorch's own float32 result
        // at x = −3 (−4.049867e-3) carries the rounding of 1 + erf(x/√2) ≈ 0.00135, so the exact value is the reference.
        AssertClose(new[] { -4.049694095e-03f, -1.586552539e-01f, -4.601721627e-02f, 0f, 3.457312306e-01f, 1.954499736e+00f }, y, 1e-6);
        Assert.Empty(nn.GELU().parameters());
    }

    [Fact]
    public void A_small_model_trains_with_adam()
    {
        // Linear → GELU → LayerNorm → Linear, fitting a fixed random regression target: the loss must fall.
        manual_seed(17);
        var model = nn.Sequential(("fc1", nn.Linear(6, 16)), ("act", nn.GELU()), ("ln", nn.LayerNorm(16)), ("fc2", nn.Linear(16, 1)));
        var x = randn(32, 6);
        var target = randn(32, 1);
        var opt = optim.Adam(model.parameters(), lr: 0.01);
        float first = 0, last = 0;
        for (int step = 0; step < 100; step++)
        {
            var loss = (model.call(x) - target).square().mean();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
            model.zero_grad();
            loss.backward();
            opt.step();
        }
        Assert.True(last < 0.3f * first, $"loss went from {first} to {last}");
        Assert.Equal(new[] { "fc1.weight", "fc1.bias", "ln.weight", "ln.bias", "fc2.weight", "fc2.bias" }, model.named_parameters().Select(np => np.name));
    }

    static void AssertClose(float[] expected, Tensor actual, double rtol)
    {
        var a = actual.data<float>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - expected[i]) <= rtol * Math.Abs(expected[i]) + 1e-7,
                $"element {i}: MinTorch {a[i]:R} vs PyTorch {expected[i]:R}");
    }
}
