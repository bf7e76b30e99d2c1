using MinTorch;
using static MinTorch.torch;

namespace MinTorch.Tests;

/// <summary>
/// The fixture loader and comparison helper, checked with MinTorch's core ops only (elementwise,
/// broadcasting, sum/mean): the loaded tensors have the right shapes, the float32 and float64 files
/// agree bit for bit where they must, and the tail of the model (lm_head, cross-entropy, ln_f)
/// recomputed from PyTorch's own intermediates gives PyTorch's numbers and gradients.
/// </summary>
public class FixtureLoaderTests
{
    const int B = 2, T = 5, V = 11, C = 8, N = B * T;
    const double Rtol32 = 1e-5, AtolFraction32 = 1e-6; // see PyTorchFixtureTests for why
    const double Rtol64 = 1e-10, AtolFraction64 = 1e-12;

    static readonly (string name, long[] shape)[] Params =
    [
        ("transformer.wte.weight", [V, C]),
        ("transformer.wpe.weight", [8, C]),
        ("transformer.h.0.ln_1.weight", [C]),
        ("transformer.h.0.ln_1.bias", [C]),
        ("transformer.h.0.attn.c_attn.weight", [3 * C, C]),
        ("transformer.h.0.attn.c_attn.bias", [3 * C]),
        ("transformer.h.0.attn.c_proj.weight", [C, C]),
        ("transformer.h.0.attn.c_proj.bias", [C]),
        ("transformer.h.0.ln_2.weight", [C]),
        ("transformer.h.0.ln_2.bias", [C]),
        ("transformer.h.0.mlp.c_fc.weight", [4 * C, C]),
        ("transformer.h.0.mlp.c_fc.bias", [4 * C]),
        ("transformer.h.0.mlp.c_proj.weight", [C, 4 * C]),
        ("transformer.h.0.mlp.c_proj.bias", [C]),
        ("transformer.ln_f.weight", [C]),
        ("transformer.ln_f.bias", [C]),
        ("lm_head.weight", [V, C]),
    ];

    [Theory]
    [InlineData("attention_block_f32.json", ScalarType.Float32)]
    [InlineData("attention_block_f64.json", ScalarType.Float64)]
    public void Attention_block_fixture_has_every_tensor_with_its_shape(string file, ScalarType dtype)
    {
        var fx = Fixtures.Load(file);
        Assert.False(fx.ContainsKey("_meta"));
        Assert.Equal(new long[] { B, T }, fx["idx"].shape);
        Assert.Equal(ScalarType.Int64, fx["idx"].dtype);
        Assert.Equal(new long[] { 5, 7, 4, 5, 8, 0, 2, 0, 2, 1 }, fx["idx"].data<long>().ToArray());
        Assert.Equal(new long[] { 4, -100, 2, 1, 6, 2, 7, 4, -100, 3 }, fx["targets"].data<long>().ToArray());
        Assert.Equal(new long[] { B, T, V }, fx["logits"].shape);
        Assert.Empty(fx["loss"].shape);
        foreach (var (name, shape) in Params)
        {
            Assert.Equal(shape, fx[name].shape);
            Assert.Equal(dtype, fx[name].dtype);
            Assert.Equal(shape, fx["grad." + name].shape);
        }
    }

    [Fact]
    public void Float64_fixture_holds_the_float32_parameters_exactly()
    {
        // The float64 run starts from the float32 parameters widened exactly, so parsing the float32
        // file's shortest round-trip decimals and the float64 file's 17-digit decimals must give the
        // same numbers, bit for bit.
        var f32 = Fixtures.Load("attention_block_f32.json");
        var f64 = Fixtures.Load("attention_block_f64.json");
        foreach (var (name, _) in Params)
            Assert.Equal(f64[name].data<double>().ToArray(), f32[name].to_type(ScalarType.Float64).data<double>().ToArray());
        // The two runs' losses agree to float32 accuracy, not exactly.
        Assert.Equal(f64["loss"].item<double>(), f32["loss"].item<float>(), 1e-5);
        Assert.NotEqual(f64["loss"].item<double>(), (double)f32["loss"].item<float>());
    }

    [Fact]
    public void Optimizer_fixtures_have_three_steps_of_every_parameter()
    {
        foreach (var file in new[] { "adam_3_steps_f32.json", "adamw_3_steps_f32.json", "adam_3_steps_f64.json", "adamw_3_steps_f64.json" })
        {
            var fx = Fixtures.Load(file);
            for (int k = 1; k <= 3; k++)
            {
                Assert.Empty(fx[$"step{k}.loss"].shape);
                foreach (var (name, shape) in Params) Assert.Equal(shape, fx[$"step{k}.{name}"].shape);
            }
            Assert.Equal(3 * (Params.Length + 1), fx.Count);
        }
    }

    /// <summary>One-hot rows of the targets and a 0/1 weight per row that is 0 for ignore_index (-100),
    /// built in C# so the test needs no gather.</summary>
    static (Tensor onehot, Tensor valid, int count) TargetMasks(Tensor targets, ScalarType dtype)
    {
        var t = targets.data<long>().ToArray();
        var onehot = new double[N * V];
        var valid = new double[N];
        int count = 0;
        for (int n = 0; n < N; n++)
        {
            if (t[n] == -100) continue;
            onehot[n * V + t[n]] = 1; valid[n] = 1; count++;
        }
        return (tensor(onehot, new long[] { N, V }).to_type(dtype), tensor(valid, new long[] { N }).to_type(dtype), count);
    }

    /// <summary>cross_entropy(logits, targets, ignore_index = −100), mean over the counted rows, from core ops:
    /// −log softmax(z)[t] = logsumexp(z) − z[t], with the row max (a constant) subtracted for stability.</summary>
    static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        var (onehot, valid, count) = TargetMasks(targets, logits.dtype);
        var z = logits.reshape(N, V);
        var zs = FixtureCheck.Doubles(z.detach());
        var rowMax = Enumerable.Range(0, N).Select(n => zs[(n * V)..((n + 1) * V)].Max()).ToArray();
        var m = tensor(rowMax, new long[] { N, 1 }).to_type(logits.dtype);
        var lse = (z - m).exp().sum(1).log() + m.reshape(N);
        var picked = (z * onehot).sum(1);
        return ((lse - picked) * valid).sum() / count;
    }

    [Theory]
    [InlineData("attention_block_f32.json", Rtol32)]
    [InlineData("attention_block_f64.json", Rtol64)]
    public void Cross_entropy_of_the_fixture_logits_is_the_fixture_loss(string file, double rtol)
    {
        var fx = Fixtures.Load(file);
        var loss = CrossEntropy(fx["logits"], fx["targets"]);
        FixtureCheck.AssertClose("loss", fx["loss"], loss, rtol, 0);
    }

    [Fact]
    public void Lm_head_and_loss_from_core_ops_match_pytorch_values_and_gradients()
    {
        // logits = ln_f · lm_headᵀ as a broadcast multiply and a sum (no matmul yet), then the loss;
        // backward must give PyTorch's gradients for lm_head.weight and for ln_f's output.
        var fx = Fixtures.Load("attention_block_f32.json");
        var W = fx["lm_head.weight"].detach().requires_grad_();
        var hf = fx["intermediate.ln_f"].detach().requires_grad_();
        var logits = (hf.reshape(N, 1, C) * W.reshape(1, V, C)).sum(-1).reshape(B, T, V);
        var loss = CrossEntropy(logits, fx["targets"]);
        loss.backward();

        var check = new FixtureCheck(Rtol32, AtolFraction32);
        check.Compare("logits", fx["logits"], logits);
        check.Compare("loss", fx["loss"], loss);
        check.Compare("grad.lm_head.weight", fx["grad.lm_head.weight"], W.grad);
        check.Compare("intermediate_grad.ln_f", fx["intermediate_grad.ln_f"], hf.grad);
        check.AssertAll();
    }

    [Fact]
    public void Layer_norm_from_core_ops_matches_pytorch_ln_f()
    {
        // y = (x − mean) / √(var + 1e-5) · w + b over the last dim, var biased (divides by C).
        var fx = Fixtures.Load("attention_block_f32.json");
        var x = fx["intermediate.h_block"];
        var mu = x.mean(new long[] { -1 }, keepdim: true);
        var xc = x - mu;
        var variance = (xc * xc).mean(new long[] { -1 }, keepdim: true);
        var y = xc / (variance + 1e-5).sqrt() * fx["transformer.ln_f.weight"] + fx["transformer.ln_f.bias"];
        FixtureCheck.AssertClose("intermediate.ln_f", fx["intermediate.ln_f"], y, Rtol32, AtolFraction32);
    }

    [Fact]
    public void Check_reports_the_worst_element_with_name_index_and_values()
    {
        var expected = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        var actual = tensor(new float[] { 1, 2, 3, 4, 5.001f, 6.0002f }, new long[] { 2, 3 });
        var ex = Assert.ThrowsAny<Exception>(() => FixtureCheck.AssertClose("grad.w", expected, actual, 1e-5, 1e-6));
        Assert.Contains("grad.w", ex.Message);
        Assert.Contains("2 of 6 elements", ex.Message);
        Assert.Contains("worst at [1, 1]", ex.Message);
        Assert.Contains("expected 5,", ex.Message);
        Assert.Contains("actual 5.00099992", ex.Message); // 5.001f widened to double

        // Within tolerance: a relative error of 5e-6 passes; an absolute error below the floor
        // (1e-6 × max|expected|) passes even on a zero element.
        FixtureCheck.AssertClose("ok", expected, expected * (1 + 5e-6), 1e-5, 0);
        var withZero = tensor(new float[] { 0, 10 }, new long[] { 2 });
        FixtureCheck.AssertClose("floor", withZero, tensor(new float[] { 5e-6f, 10 }, new long[] { 2 }), 1e-5, 1e-6);
        Assert.ThrowsAny<Exception>(() => FixtureCheck.AssertClose("floor", withZero, tensor(new float[] { 2e-5f, 10 }, new long[] { 2 }), 1e-5, 1e-6));

        // Shape mismatches and NaNs fail.
        Assert.ThrowsAny<Exception>(() => FixtureCheck.AssertClose("shape", expected, expected.reshape(3, 2), 1e-5, 1e-6));
        Assert.ThrowsAny<Exception>(() => FixtureCheck.AssertClose("nan", expected, expected * float.NaN, 1e-5, 1e-6));
    }
}
