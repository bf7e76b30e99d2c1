using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class OptimTests
{
    // ------------------------------------------------------------------ against PyTorch

    // Two float32 parameters, three steps with fixed gradients; the second parameter has no gradient at
    // step 2. The same data is in tests/reference/optim_reference.py.
    static readonly float[] P0 = { 0.5f, -1.2f, 0.3f, 2.0f, -0.7f, 0.05f };
    static readonly float[] P1 = { 1.5f, -0.25f, 0.8f, -2.2f };
    static readonly (float[] g0, float[]? g1)[] Grads =
    {
        (new[] { 0.1f, -0.4f, 0.25f, 1.5f, -0.9f, 0.02f }, new[] { -0.3f, 0.6f, 0.0f, 2.5f }),
        (new[] { 0.05f, 0.3f, -0.2f, 0.1f, -0.15f, 0.4f }, null),
        (new[] { -0.02f, 0.01f, 0.6f, -0.3f, 0.05f, -0.25f }, new[] { 0.01f, 0.3f, -0.4f, 0.1f }),
    };

    // Printed by `/usr/bin/python3 tests/reference/optim_reference.py` (PyTorch 1.13, foreach=False).
    static readonly Dictionary<string, (float[] p0, float[] p1)> Expected = new()
    {
        ["sgd_nesterov"] = (new float[] { 4.519634247e-01f, -1.136301398e+00f, 1.519995481e-01f, 1.499559522e+00f, -3.546957374e-01f, -1.801476441e-02f }, new float[] { 1.572382092e+00f, -4.682317972e-01f, 8.723149300e-01f, -2.885463476e+00f }),
        ["sgd_dampening"] = (new float[] { 4.635303319e-01f, -1.137533545e+00f, 2.109245807e-01f, 1.593289495e+00f, -4.315487742e-01f, -1.546549378e-03f }, new float[] { 1.551874280e+00f, -3.902462125e-01f, 8.337607384e-01f, -2.677617073e+00f }),
        ["sgd_plain_maximize"] = (new float[] { 5.065000057e-01f, -1.204500079e+00f, 3.325000107e-01f, 2.065000057e+00f, -7.500000000e-01f, 5.850000307e-02f }, new float[] { 1.485499978e+00f, -2.049999982e-01f, 7.800000310e-01f, -2.069999933e+00f }),
        ["adam_wd"] = (new float[] { 4.719205499e-01f, -1.181939244e+00f, 2.818408310e-01f, 1.976400137e+00f, -6.753889918e-01f, 3.031153977e-02f }, new float[] { 1.509120584e+00f, -2.692507505e-01f, 7.956011295e-01f, -2.216296673e+00f }),
        ["adam_amsgrad"] = (new float[] { 4.754320383e-01f, -1.189599752e+00f, 2.839427888e-01f, 1.980034828e+00f, -6.777547598e-01f, 3.081647865e-02f }, new float[] { 1.515870929e+00f, -2.692832053e-01f, 8.076578379e-01f, -2.216432571e+00f }),
        ["adam_maximize"] = (new float[] { 5.505772233e-01f, -1.222911477e+00f, 3.328591585e-01f, 2.042745829e+00f, -7.470588088e-01f, 8.894838393e-02f }, new float[] { 1.467102408e+00f, -2.113564759e-01f, 7.851173282e-01f, -2.166014433e+00f }),
        ["adamw"] = (new float[] { 4.745640159e-01f, -1.188186407e+00f, 2.834824324e-01f, 1.978029847e+00f, -6.762632728e-01f, 3.051306121e-02f }, new float[] { 1.516147852e+00f, -2.692708075e-01f, 8.072813749e-01f, -2.216551781e+00f }),
        ["adamw_amsgrad"] = (new float[] { 3.668246865e-01f, -1.125332952e+00f, 2.138876170e-01f, 1.863963127e+00f, -5.725997686e-01f, -4.742693156e-02f }, new float[] { 1.567031622e+00f, -3.438652158e-01f, 8.292268515e-01f, -2.262768984e+00f }),
    };

    static readonly Dictionary<string, Func<IEnumerable<Parameter>, optim.Optimizer>> Make = new()
    {
        ["sgd_nesterov"] = ps => optim.SGD(ps, 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01),
        ["sgd_dampening"] = ps => optim.SGD(ps, 0.1, momentum: 0.9, dampening: 0.1, weight_decay: 0.01),
        ["sgd_plain_maximize"] = ps => optim.SGD(ps, 0.05, maximize: true),
        ["adam_wd"] = ps => optim.Adam(ps, lr: 0.01, weight_decay: 0.1),
        ["adam_amsgrad"] = ps => optim.Adam(ps, lr: 0.01, beta1: 0.8, beta2: 0.9, amsgrad: true),
        ["adam_maximize"] = ps => optim.Adam(ps, lr: 0.02, eps: 1e-6, maximize: true),
        ["adamw"] = ps => optim.AdamW(ps, lr: 0.01, weight_decay: 0.01),
        ["adamw_amsgrad"] = ps => optim.AdamW(ps, lr: 0.05, weight_decay: 0.1, amsgrad: true),
    };

    static (Parameter p0, Parameter p1) Run(string name)
    {
        var p0 = new Parameter(tensor(P0, new long[] { 2, 3 }));
        var p1 = new Parameter(tensor(P1));
        var opt = Make[name](new[] { p0, p1 });
        foreach (var (g0, g1) in Grads)
        {
            p0.grad = tensor(g0, new long[] { 2, 3 });
            p1.grad = g1 is null ? null : tensor(g1);
            opt.step();
        }
        return (p0, p1);
    }

    static void AssertClose(float[] expected, float[] actual, string what, double rtol = 1e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= rtol * Math.Abs(expected[i]),
                $"{what}[{i}]: MinTorch {actual[i]:R} vs PyTorch {expected[i]:R} (relative error {Math.Abs(actual[i] - expected[i]) / Math.Abs(expected[i]):E2})");
    }

    [Theory]
    [InlineData("sgd_nesterov")]
    [InlineData("sgd_dampening")]
    [InlineData("sgd_plain_maximize")]
    [InlineData("adam_wd")]
    [InlineData("adam_amsgrad")]
    [InlineData("adam_maximize")]
    [InlineData("adamw")]
    [InlineData("adamw_amsgrad")]
    public void Three_steps_match_pytorch(string name)
    {
        var (p0, p1) = Run(name);
        AssertClose(Expected[name].p0, p0.data<float>().ToArray(), $"{name} p0");
        AssertClose(Expected[name].p1, p1.data<float>().ToArray(), $"{name} p1");
    }

    // ------------------------------------------------------------------ semantics

    [Fact]
    public void Adam_first_step_moves_each_weight_by_about_lr()
    {
        // With bias correction, step 1 is p − lr·g/(|g| + eps) = p − lr·sign(g) (up to eps).
        var p = new Parameter(tensor(new double[] { 1, 2, 3 }));
        var opt = optim.Adam(new[] { p }, lr: 0.1);
        p.grad = tensor(new double[] { 5, -0.01, 1e-3 });
        opt.step();
        var v = p.data<double>().ToArray();
        Assert.Equal(0.9, v[0], 1e-6);
        Assert.Equal(2.1, v[1], 1e-5);
        Assert.Equal(3 - 0.1 * 1e-3 / (1e-3 + 1e-8), v[2], 1e-12);
    }

    [Fact]
    public void Parameters_without_grad_are_skipped()
    {
        var a = new Parameter(ones(3));
        var b = new Parameter(ones(3));
        foreach (var opt in new optim.Optimizer[] { optim.Adam(new[] { a, b }), optim.AdamW(new[] { a, b }, weight_decay: 0.5), optim.SGD(new[] { a, b }, 0.1, momentum: 0.9) })
        {
            a.grad = ones(3);
            b.grad = null;
            opt.step();
            Assert.Equal(new float[] { 1, 1, 1 }, b.data<float>().ToArray());
        }
        Assert.NotEqual(1f, a.data<float>()[0]);
    }

    [Fact]
    public void Learning_rate_is_read_and_set_through_param_groups()
    {
        var p = new Parameter(tensor(new double[] { 1, 2 }));
        var opt = optim.SGD(new[] { p }, 0.5);
        var group = Assert.Single(opt.ParamGroups);
        Assert.Equal(0.5, group.LearningRate);
        Assert.Equal(0.5, group.InitialLearningRate);

        group.LearningRate = 0.25;
        p.grad = tensor(new double[] { 1, -4 });
        opt.step();
        Assert.Equal(new[] { 0.75, 3.0 }, p.data<double>().ToArray());
        Assert.Equal(0.5, group.InitialLearningRate);

        group.LearningRate = 0;
        opt.step();
        Assert.Equal(new[] { 0.75, 3.0 }, p.data<double>().ToArray());
    }

    [Fact]
    public void Adam_learning_rate_change_takes_effect_on_the_next_step()
    {
        Tensor RunAdam(double lr2)
        {
            var p = new Parameter(tensor(new float[] { 1, -1, 0.5f }));
            var opt = optim.Adam(new[] { p }, lr: 0.1);
            p.grad = tensor(new float[] { 0.3f, 0.2f, -0.1f }); opt.step();
            foreach (var g in opt.ParamGroups) g.LearningRate = lr2;
            p.grad = tensor(new float[] { -0.1f, 0.4f, 0.2f }); opt.step();
            return p;
        }
        var slow = RunAdam(0.0).data<float>().ToArray();
        var fast = RunAdam(0.1).data<float>().ToArray();
        // lr 0 on step 2 leaves the parameters where step 1 put them.
        var p1 = new Parameter(tensor(new float[] { 1, -1, 0.5f }));
        var o1 = optim.Adam(new[] { p1 }, lr: 0.1);
        p1.grad = tensor(new float[] { 0.3f, 0.2f, -0.1f }); o1.step();
        Assert.Equal(p1.data<float>().ToArray(), slow);
        Assert.NotEqual(slow, fast);
    }

    [Fact]
    public void Optimizer_zero_grad_fills_with_zeros_in_place()
    {
        var p = new Parameter(ones(2, 2));
        var opt = optim.Adam(new[] { p });
        var g = ones(2, 2);
        p.grad = g;
        opt.zero_grad();
        Assert.Same(g, p.grad);
        Assert.Equal(new float[] { 0, 0, 0, 0 }, p.grad!.data<float>().ToArray());
    }

    [Fact]
    public void Parameter_groups_have_their_own_learning_rates()
    {
        var a = new Parameter(tensor(new double[] { 1 }));
        var b = new Parameter(tensor(new double[] { 1 }));
        var opt = optim.SGD(new[]
        {
            new SGD.ParamGroup(new[] { a }),
            new SGD.ParamGroup(new[] { b }, new SGD.Options { LearningRate = 0.01 }),
        }, 0.1);
        a.grad = ones(1, dtype: ScalarType.Float64);
        b.grad = ones(1, dtype: ScalarType.Float64);
        opt.step();
        Assert.Equal(0.9, a.data<double>()[0], 1e-15);
        Assert.Equal(0.99, b.data<double>()[0], 1e-15);
        Assert.Equal(new[] { 0.1, 0.01 }, opt.ParamGroups.Select(g => g.LearningRate).ToArray());
    }

    [Fact]
    public void Step_evaluates_the_closure_with_grad_enabled()
    {
        var p = new Parameter(tensor(new double[] { 3 }));
        var opt = optim.SGD(new[] { p }, 0.1);
        Tensor? loss;
        using (no_grad())
        {
            loss = opt.step(() =>
            {
                var l = (p * p).sum();
                l.backward();
                return l;
            });
        }
        Assert.Equal(9.0, loss!.item<double>());
        Assert.Equal(3 - 0.1 * 6, p.data<double>()[0], 1e-15);
    }

    [Fact]
    public void Invalid_hyperparameters_are_rejected_with_their_names()
    {
        var ps = new[] { new Parameter(ones(1)) };
        Assert.Contains("learning rate", Assert.Throws<ArgumentException>(() => optim.Adam(ps, lr: -1)).Message);
        Assert.Contains("beta2", Assert.Throws<ArgumentException>(() => optim.AdamW(ps, beta2: 1.0)).Message);
        Assert.Contains("Nesterov", Assert.Throws<ArgumentException>(() => optim.SGD(ps, 0.1, nesterov: true)).Message);
    }

    [Fact]
    public void Changing_a_parameter_dtype_after_the_first_step_is_refused()
    {
        var lin = new Holder();
        var opt = optim.Adam(lin.parameters());
        lin.w.grad = ones(2);
        opt.step();
        lin.to(ScalarType.Float64);
        lin.w.grad = ones(2, dtype: ScalarType.Float64);
        var ex = Assert.Throws<InvalidOperationException>(() => opt.step());
        Assert.Contains("Float64", ex.Message);
        Assert.Contains("Float32", ex.Message);
    }

    sealed class Holder : nn.Module
    {
        public readonly Parameter w = new(ones(2));
        public Holder() : base(nameof(Holder)) => RegisterComponents();
    }

    [Fact]
    public void AdamW_default_weight_decay_is_zero_like_torchsharp()
    {
        // TorchSharp's AdamW defaults to weight_decay = 0 (PyTorch: 0.01), so with no decay AdamW == Adam.
        var a = new Parameter(tensor(new float[] { 1, -2, 3 }));
        var b = new Parameter(tensor(new float[] { 1, -2, 3 }));
        var adam = optim.Adam(new[] { a });
        var adamw = optim.AdamW(new[] { b });
        for (int i = 0; i < 3; i++)
        {
            a.grad = tensor(new float[] { 0.1f * i, -0.5f, 2 });
            b.grad = tensor(new float[] { 0.1f * i, -0.5f, 2 });
            adam.step(); adamw.step();
        }
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
    }

    [Fact]
    public void Adam_vector_and_scalar_paths_agree_bitwise()
    {
        // The update is elementwise: a 1000-element parameter (vectorised loop) must give exactly what
        // 1000 one-element parameters (scalar tail loop) give.
        var gen = new Generator(5);
        var init = randn(1000, generator: gen);
        var grads = Enumerable.Range(0, 3).Select(_ => randn(1000, generator: gen)).ToArray();

        var big = new Parameter(init.clone());
        var optBig = optim.AdamW(new[] { big }, lr: 0.01, weight_decay: 0.1, amsgrad: true);
        var smalls = Enumerable.Range(0, 1000).Select(i => new Parameter(tensor(new[] { init.data<float>()[i] }))).ToArray();
        var optSmall = optim.AdamW(smalls, lr: 0.01, weight_decay: 0.1, amsgrad: true);
        foreach (var g in grads)
        {
            big.grad = g;
            var gv = g.data<float>().ToArray();
            for (int i = 0; i < 1000; i++) smalls[i].grad = tensor(new[] { gv[i] });
            optBig.step(); optSmall.step();
        }
        Assert.Equal(smalls.Select(s => s.data<float>()[0]).ToArray(), big.data<float>().ToArray());
    }

    [Fact]
    public void Adam_step_is_bitwise_identical_for_any_thread_count()
    {
        float[] RunWith(int threads)
        {
            int saved = get_num_threads();
            set_num_threads(threads);
            try
            {
                var p = new Parameter(randn(300_001, generator: new Generator(9)));
                var opt = optim.Adam(new[] { p }, lr: 0.01, weight_decay: 0.01);
                for (int s = 0; s < 2; s++) { p.grad = randn(300_001, generator: new Generator(10 + (ulong)s)); opt.step(); }
                return p.data<float>().ToArray();
            }
            finally { set_num_threads(saved); }
        }
        Assert.Equal(RunWith(1), RunWith(4));
    }

    // ------------------------------------------------------------------ torch.nn.utils

    [Fact]
    public void Clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before()
    {
        var a = new Parameter(zeros(2)); a.grad = tensor(new float[] { 3, 4 });
        var b = new Parameter(zeros(1)); b.grad = tensor(new float[] { 12 });
        var c = new Parameter(zeros(1)); // no gradient: ignored
        double total = nn.utils.clip_grad_norm_(new[] { a, b, c }, 6.5);
        Assert.Equal(13.0, total, 1e-6);
        double coef = 6.5 / (13 + 1e-6);
        Assert.Equal(new[] { (float)(3 * coef), (float)(4 * coef) }, a.grad!.data<float>().ToArray());
        Assert.Equal((float)(12 * coef), b.grad!.data<float>()[0]);
        Assert.Null(c.grad);
    }

    [Fact]
    public void Clip_grad_norm_leaves_small_gradients_unchanged()
    {
        var a = new Parameter(zeros(2, dtype: ScalarType.Float64)); a.grad = tensor(new double[] { 0.3, -0.4 });
        double total = nn.utils.clip_grad_norm_(new[] { a }, 1.0);
        Assert.Equal(0.5, total, 1e-15);
        Assert.Equal(new[] { 0.3, -0.4 }, a.grad!.data<double>().ToArray());
    }

    [Fact]
    public void Clip_grad_norm_other_norms()
    {
        var a = new Parameter(zeros(3, dtype: ScalarType.Float64)); a.grad = tensor(new double[] { 1, -5, 2 });
        var b = new Parameter(zeros(1, dtype: ScalarType.Float64)); b.grad = tensor(new double[] { 4 });
        Assert.Equal(5.0, nn.utils.clip_grad_norm_(new[] { a, b }, 100, double.PositiveInfinity));
        Assert.Equal(12.0, nn.utils.clip_grad_norm_(new[] { a, b }, 100, 1), 1e-12);
        Assert.Equal(Math.Pow(1 + 125 + 8 + 64, 1 / 3.0), nn.utils.clip_grad_norm_(new[] { a, b }, 100, 3), 1e-12);
        nn.utils.clip_grad_norm_(new[] { a, b }, 2.5, double.PositiveInfinity);
        Assert.Equal(-2.5, a.grad!.data<double>()[1], 1e-6);
    }

    [Fact]
    public void Clip_grad_value_clamps_elements()
    {
        var a = new Parameter(zeros(3)); a.grad = tensor(new float[] { -3, 0.5f, 2 });
        nn.utils.clip_grad_value_(new[] { a }, 1);
        Assert.Equal(new float[] { -1, 0.5f, 1 }, a.grad!.data<float>().ToArray());
    }

    [Fact]
    public void Parameters_to_vector_and_back_round_trip()
    {
        var a = new Parameter(tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 }));
        var b = new Parameter(tensor(new float[] { 7, 8 }));
        var v = nn.utils.parameters_to_vector(new[] { a, b });
        Assert.Equal(new long[] { 8 }, v.shape);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, v.data<float>().ToArray());

        nn.utils.vector_to_parameters(tensor(new float[] { 8, 7, 6, 5, 4, 3, 2, 1 }), new[] { a, b });
        Assert.Equal(new float[] { 8, 7, 6, 5, 4, 3 }, a.data<float>().ToArray());
        Assert.Equal(new long[] { 2, 3 }, a.shape);
        Assert.Equal(new float[] { 2, 1 }, b.data<float>().ToArray());
        Assert.True(a.requires_grad && a.is_leaf);
        // The vector is a copy: changing the parameters does not change it.
        Assert.Equal(1f, v.data<float>()[0]);
    }

    [Fact]
    public void Vector_to_parameters_length_mismatch_is_a_clear_error()
    {
        var a = new Parameter(zeros(2, 3));
        var ex = Assert.Throws<ArgumentException>(() => nn.utils.vector_to_parameters(zeros(5), new[] { a }));
        Assert.Contains("5 elements", ex.Message);
        Assert.Contains("6", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
    }

    static Parameter P(long[] shape, long seed) => new(GradCheck.Input(shape, seed));

    [Fact]
    public void Parameters_to_vector_gradcheck() =>
        GradCheck.Check(xs => nn.utils.parameters_to_vector(xs.Cast<Parameter>()) * 2, P([2, 3], 1), P([4], 2), P([1, 1, 2], 3));

    [Fact]
    public void Parameters_to_vector_second_order() =>
        GradCheck.CheckSecondOrder(xs => nn.utils.parameters_to_vector(xs.Cast<Parameter>()).pow(3.0).sum() * nn.utils.parameters_to_vector(xs.Cast<Parameter>()),
            P([2, 2], 4), P([3], 5));

    [Fact]
    public void Flat_gradient_of_a_loss_matches_the_per_parameter_gradients()
    {
        // TRPO's pattern: flat_grad = parameters_to_vector(autograd.grad(loss, params)) — here via a vector
        // built from the parameters themselves, whose gradient lands back in each parameter's .grad.
        var a = new Parameter(tensor(new double[] { 1, 2, 3, 4 }, new long[] { 2, 2 }));
        var b = new Parameter(tensor(new double[] { -1, 0.5 }));
        var v = nn.utils.parameters_to_vector(new[] { a, b });
        (v * v).sum().backward();
        Assert.Equal(new double[] { 2, 4, 6, 8 }, a.grad!.data<double>().ToArray());
        Assert.Equal(new long[] { 2, 2 }, a.grad.shape);
        Assert.Equal(new double[] { -2, 1 }, b.grad!.data<double>().ToArray());
    }
}
