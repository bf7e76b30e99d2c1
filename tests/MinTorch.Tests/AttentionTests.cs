using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

/// <summary>
/// <c>torch.nn.functional.scaled_dot_product_attention</c>: softmax(Q Kᵀ/√D + mask) V, with is_causal, a bool
/// mask (true = may attend), a float mask (added to the scores), 2-, 3- and 4-D inputs and broadcast batch dims.
/// </summary>
public class AttentionTests
{
    static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask = null, bool causal = false) =>
        F.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: causal);

    /// <summary>A bool (T, L) mask from rows of 0/1 (every row must allow at least one key, or softmax gives NaN).</summary>
    static Tensor BoolMask(long[] shape, params int[] bits) => tensor(bits.Select(b => b != 0).ToArray(), shape);

    // ------------------------------------------------------------------ first-order gradient checks (float64)

    [Fact]
    public void Gradcheck_causal_3d()
    {
        var q = GradCheck.Input([2, 4, 3], 1);
        var k = GradCheck.Input([2, 4, 3], 2);
        var v = GradCheck.Input([2, 4, 5], 3);   // the value width may differ from the key width
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], causal: true), q, k, v);
    }

    [Fact]
    public void Gradcheck_causal_4d_with_fewer_queries_than_keys()
    {
        // is_causal is top-left aligned, as in PyTorch 2's reference: query i sees keys 0..i (tril with diagonal 0).
        var q = GradCheck.Input([2, 2, 3, 4], 4);
        var k = GradCheck.Input([2, 2, 5, 4], 5);
        var v = GradCheck.Input([2, 2, 5, 3], 6);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], causal: true), q, k, v);
    }

    [Fact]
    public void Gradcheck_bool_mask_with_an_offset_as_the_kv_cache_uses()
    {
        // T = 3 new queries after 2 cached positions: L = 5 keys, query i (absolute position 2 + i) sees keys 0..2+i.
        const long T = 3, L = 5;
        var mask = ones(T, L, dtype: ScalarType.Bool).tril(L - T);
        var q = GradCheck.Input([2, 2, T, 4], 7);
        var k = GradCheck.Input([2, 2, L, 4], 8);
        var v = GradCheck.Input([2, 2, L, 3], 9);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], mask), q, k, v);
    }

    [Fact]
    public void Gradcheck_bool_mask_per_batch_and_head_and_broadcast_over_heads()
    {
        var q = GradCheck.Input([2, 2, 3, 4], 10);
        var k = GradCheck.Input([2, 2, 4, 4], 11);
        var v = GradCheck.Input([2, 2, 4, 2], 12);
        var full = BoolMask([2, 2, 3, 4],
            1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1,
            0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0,
            1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1,
            0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], full), q, k, v);
        var perBatch = BoolMask([2, 1, 3, 4],
            1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1,
            0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], perBatch), q, k, v);
    }

    [Fact]
    public void Gradcheck_float_mask_including_its_own_gradient()
    {
        var q = GradCheck.Input([2, 3, 4], 13);
        var k = GradCheck.Input([2, 5, 4], 14);
        var v = GradCheck.Input([2, 5, 3], 15);
        // A constant additive mask with -inf entries (every row keeps some keys)...
        var ninf = double.NegativeInfinity;
        var constant = tensor(new double[] { 0, -1, ninf, 0.5, 2, ninf, 0, 0, -3, 1, 0.25, 0.5, ninf, ninf, 0 }, [3, 5]);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], constant), q, k, v);
        // ...and a finite (B, T, L) mask that is differentiated too: d out / d mask = d out / d scores.
        var m = GradCheck.Input([2, 3, 5], 16);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], xs[3]), q, k, v, m);
    }

    [Fact]
    public void Gradcheck_2d_inputs_and_broadcast_batch_dims()
    {
        var q2 = GradCheck.Input([3, 4], 17);
        var k2 = GradCheck.Input([5, 4], 18);
        var v2 = GradCheck.Input([5, 2], 19);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2]), q2, k2, v2);
        // Keys and values shared by every batch element ((1, H, L, D) against (B, H, T, D)): their gradient is
        // summed over the batch.
        var q = GradCheck.Input([3, 2, 2, 4], 20);
        var k = GradCheck.Input([1, 2, 4, 4], 21);
        var v = GradCheck.Input([1, 2, 4, 3], 22);
        GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], causal: true), q, k, v);
        var y = Sdpa(q, k, v, causal: true);
        Assert.Equal(new long[] { 3, 2, 2, 3 }, y.shape);
    }

    // ------------------------------------------------------------------ second order (double backward)

    [Fact]
    public void Second_order_causal_4d()
    {
        var q = GradCheck.Input([1, 2, 3, 4], 30);
        var k = GradCheck.Input([1, 2, 3, 4], 31);
        var v = GradCheck.Input([1, 2, 3, 2], 32);
        GradCheck.CheckSecondOrder(xs => Sdpa(xs[0], xs[1], xs[2], causal: true), q, k, v);
    }

    [Fact]
    public void Second_order_bool_mask_with_an_offset()
    {
        var mask = ones(2, 4, dtype: ScalarType.Bool).tril(2);
        var q = GradCheck.Input([2, 2, 4], 33);
        var k = GradCheck.Input([2, 4, 4], 34);
        var v = GradCheck.Input([2, 4, 3], 35);
        GradCheck.CheckSecondOrder(xs => Sdpa(xs[0], xs[1], xs[2], mask), q, k, v);
    }

    [Fact]
    public void Second_order_float_mask_differentiated_too()
    {
        var q = GradCheck.Input([2, 3, 4], 36);
        var k = GradCheck.Input([2, 4, 4], 37);
        var v = GradCheck.Input([2, 4, 2], 38);
        var m = GradCheck.Input([3, 4], 39);
        GradCheck.CheckSecondOrder(xs => Sdpa(xs[0], xs[1], xs[2], xs[3]), q, k, v, m);
    }

    // ------------------------------------------------------------------ known values (PyTorch 1.13)

    // PyTorch 1.13 has no F.scaled_dot_product_attention, so these came from the explicit formula in float64,
    //   s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    //   s = s.masked_fill(~mask, float('-inf')) if mask.dtype == torch.bool else s + mask     (if a mask is given)
    //   out = s.softmax(-1) @ v
    // with is_causal meaning mask = torch.ones(T, L, dtype=torch.bool).tril() (PyTorch 2's definition), on
    //   Q = (arange(24) * 0.7 + 0.3).sin() * 1.5   reshaped (1, 2, 3, 4)    (B, H, T, D)
    //   K = (arange(32) * 0.45 - 0.2).cos() * 1.5  reshaped (1, 2, 4, 4)    (B, H, L, D)
    //   V = (arange(24) * 0.31 + 1.0).sin() * 2    reshaped (1, 2, 4, 3)    (B, H, L, Dv)
    static Tensor Q(ScalarType t = ScalarType.Float64) => ((arange(24, dtype: ScalarType.Float64) * 0.7 + 0.3).sin() * 1.5).reshape(1, 2, 3, 4).to_type(t);
    static Tensor K(ScalarType t = ScalarType.Float64) => ((arange(32, dtype: ScalarType.Float64) * 0.45 - 0.2).cos() * 1.5).reshape(1, 2, 4, 4).to_type(t);
    static Tensor V(ScalarType t = ScalarType.Float64) => ((arange(24, dtype: ScalarType.Float64) * 0.31 + 1.0).sin() * 2).reshape(1, 2, 4, 3).to_type(t);
    static Tensor OffsetMask => ones(3, 4, dtype: ScalarType.Bool).tril(1);

    static readonly double[] NoMask = [0.006137987176501936, -0.14566633513976546, -0.2835838690881458, 1.5711785673587157, 1.2088695107222631, 0.7313154659855425, -0.3313557470927804, -0.6012354085981597, -0.8137975789311824, -1.1185478306755592, -0.8377636581403358, -0.47711307987904183, 0.2276805354089512, 0.7232936807207144, 1.1499531706641204, -0.01210270114490375, 0.1289436232517044, 0.2576973832354923];
    static readonly double[] Causal = [1.682941969615793, 1.9323699032254682, 1.997579486941048, 1.8690816056383697, 1.5749162015526084, 1.1306095313525177, 1.4587216641486607, 1.5132467601601574, 1.4235097142939643, -1.999942072660049, -1.8999684039215217, -1.6188653128932389, -1.3329065045884638, -0.8667173442173233, -0.317901540412233, -1.7513286089915472, -1.5873001960340156, -1.2719499153471865];
    static readonly double[] Offset = [1.6850381240224412, 1.9283445480246908, 1.9878163707575711, 1.5898617496969614, 1.2279991621118103, 0.74906790204425, -0.3313557470927804, -0.6012354085981597, -0.8137975789311824, -1.644586300855614, -1.3495154065642185, -0.9257913486425304, 0.07078281508104944, 0.602380072939824, 1.0765507155005496, -0.01210270114490375, 0.1289436232517044, 0.2576973832354923];
    static readonly double[] FloatMask = [1.6462086209539442, 1.864778056926849, 1.905572867041436, 1.7851912536694663, 1.5087102582088612, 1.0883995985770172, -1.197568463901077, -1.627137342641089, -1.9015865645224068, -1.6208161446260927, -1.3923538327944738, -1.031154447632341, -0.6244527403326045, -0.3043043314184519, 0.04485427978976547, 1.870913192047568, 1.9896407751104919, 1.9186902122547382];
    static readonly double[] Mask4d = [1.6598123993394602, 1.8915519224801036, 1.9429643905798621, 1.8690816056383697, 1.5749162015526084, 1.1306095313525177, -1.0042984668548702, -1.4476699923240686, -1.753030996757938, 1.8828387451456365, 1.9988453596690559, 1.9242963289006136, 0.2276805354089512, 0.7232936807207144, 1.1499531706641204, 0.006473603205009004, 0.11473224996897158, 0.21205314318293278];

    [Fact]
    public void Matches_pytorch_float64()
    {
        const double rtol = 1e-12, atol = 1e-14;
        NnAssert.Close(NoMask, Sdpa(Q(), K(), V()), rtol, atol, "no mask");
        NnAssert.Close(Causal, Sdpa(Q(), K(), V(), causal: true), rtol, atol, "is_causal (T 3 < L 4)");
        NnAssert.Close(Offset, Sdpa(Q(), K(), V(), OffsetMask), rtol, atol, "bool mask ones(3, 4).tril(1)");
        var ninf = double.NegativeInfinity;
        var fm = tensor(new double[] { 0, -1, 0.5, ninf, 1.5, 0, -2, 0.25, ninf, -0.5, 0, 3 }, [3, 4]);
        NnAssert.Close(FloatMask, Sdpa(Q(), K(), V(), fm), rtol, atol, "float mask");
        var m4 = BoolMask([1, 2, 3, 4], 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1);
        NnAssert.Close(Mask4d, Sdpa(Q(), K(), V(), m4), rtol, atol, "(B, H, T, L) bool mask");
        Assert.Equal(new long[] { 1, 2, 3, 3 }, Sdpa(Q(), K(), V()).shape);
    }

    [Fact]
    public void Matches_pytorch_float32()
    {
        // PyTorch's own float32 run of the offset case is within 2e-7 of its float64 run.
        var y = Sdpa(Q(ScalarType.Float32), K(ScalarType.Float32), V(ScalarType.Float32), OffsetMask);
        Assert.Equal(ScalarType.Float32, y.dtype);
        NnAssert.Close(Offset, y, 1e-6, 1e-6, "float32, bool mask ones(3, 4).tril(1)");
    }

    [Fact]
    public void Gradients_match_pytorch()
    {
        // PyTorch (float64): out = sdpa(q, k, v, mask = ones(3, 4).tril(1)); out.pow(2).sum().backward()
        double[] gq = [0.035388704945695675, 0.05014071238164074, 0.05490941340219912, 0.04874533199815013, 1.3199685927376619, 0.4640708127463904, -0.48422615548978465, -1.3361108899346972, -0.7233076323221164, -0.08087220825403585, 0.5776653411556985, 1.1211863734004752, 2.610435630031983, 2.2982707515008336, 1.5285068471896879, 0.4544083714555238, -0.09931903818902432, 0.5765682714721794, 1.1376574969002564, 1.472232521635091, 0.08961530586093464, 0.26560997210405024, 0.3887201536131999, 0.434433899790137];
        double[] gk = [0.6409949854081992, -0.5189306964031724, -1.4347951631803293, -1.6758530454209226, 0.0670482701768137, -0.8589689093143457, -1.3809995889955244, -1.2535245832582875, -0.02873319093541681, 0.811848809566891, 1.2706056294423143, 1.1317767680303972, -0.6793100646495969, 0.5660507961506258, 1.5451891227335381, 1.7976008606488123, 0.9217315575079237, -0.1533521985839825, -1.1563120194876393, -1.6154402297525585, -0.5324989778886641, 0.19126296785981017, 0.8250709512575012, 1.0708351741895537, -0.8480117057769467, -0.3402485918522561, 0.3275387513514546, 0.8412795018604081, 0.4587791261576872, 0.3023378225764284, 0.0037023168786833225, -0.2966744462974035];
        double[] gv = [3.2100802453055417, 3.5462951292486853, 3.5444315553058936, 2.4904166013638007, 1.9298364145384068, 1.1852794025418132, 0.6314740024576968, 0.4413116477980926, 0.20907779150171174, -0.44488259587379486, -0.8072265885085017, -1.0926153616081409, -1.8615688649811133, -1.3498312388686107, -0.7094103399288847, -1.401323108050434, -0.9018495564885562, -0.3164001072107537, 0.10266372800945225, 0.8918786828689982, 1.5960682919137517, -0.011584128816841085, 0.12341869174278847, 0.2466556554129097];
        var (q, k, v) = (Q().requires_grad_(), K().requires_grad_(), V().requires_grad_());
        Sdpa(q, k, v, OffsetMask).pow(2).sum().backward();
        NnAssert.Close(gq, q.grad!, 1e-12, 1e-14, "d/dq");
        NnAssert.Close(gk, k.grad!, 1e-12, 1e-14, "d/dk");
        NnAssert.Close(gv, v.grad!, 1e-12, 1e-14, "d/dv");
    }

    [Fact]
    public void Causal_equals_the_explicit_tril_mask_and_bool_equals_float_minus_infinity()
    {
        var (q, k, v) = (Q(), K(), V());
        var tril = ones(3, 4, dtype: ScalarType.Bool).tril();
        Assert.Equal(Sdpa(q, k, v, tril).data<double>().ToArray(), Sdpa(q, k, v, causal: true).data<double>().ToArray());
        var additive = zeros(3, 4, dtype: ScalarType.Float64).masked_fill(OffsetMask.logical_not(), double.NegativeInfinity);
        Assert.Equal(Sdpa(q, k, v, OffsetMask).data<double>().ToArray(), Sdpa(q, k, v, additive).data<double>().ToArray());
        // A key that no query may see does not influence the output at all.
        using var _ = no_grad();
        var v2 = V().clone();
        v2.index_put_(full(new long[] { 1, 2, 1, 3 }, 1e6, ScalarType.Float64), TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(3, 4));
        Assert.Equal(Sdpa(q, k, v, causal: true).data<double>().ToArray(), Sdpa(q, k, v2, causal: true).data<double>().ToArray());
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Mismatched_shapes_are_refused_naming_the_op_and_the_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Sdpa(zeros(2, 3, 4), zeros(2, 3, 5), zeros(2, 3, 4)));
        Assert.Contains("scaled_dot_product_attention", e.Message);
        Assert.Contains("[2, 3, 4]", e.Message);
        Assert.Contains("[2, 3, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Sdpa(zeros(2, 3, 4), zeros(2, 3, 4), zeros(2, 6, 4)));
        Assert.Contains("scaled_dot_product_attention", e.Message);
        Assert.Contains("[2, 6, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Sdpa(zeros(4), zeros(2, 4), zeros(2, 4)));
        Assert.Contains("scaled_dot_product_attention", e.Message);
        Assert.Contains("at least 2 dims", e.Message);
    }

    [Fact]
    public void Mask_and_is_causal_together_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => F.scaled_dot_product_attention(
            zeros(1, 2, 4), zeros(1, 2, 4), zeros(1, 2, 4), attn_mask: ones(2, 2, dtype: ScalarType.Bool), is_casual: true));
        Assert.Contains("scaled_dot_product_attention", e.Message);
        Assert.Contains("either attn_mask or is_causal", e.Message);
    }

    [Fact]
    public void Dropout_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => F.scaled_dot_product_attention(zeros(1, 2, 4), zeros(1, 2, 4), zeros(1, 2, 4), p: 0.1));
        Assert.Contains("dropout", e.Message);
    }

    [Fact]
    public void A_mask_that_does_not_fit_the_scores_is_refused()
    {
        // scores are (1, 3, 5); a (3, 4) mask does not broadcast to them.
        var e = Assert.ThrowsAny<ArgumentException>(() => Sdpa(zeros(1, 3, 4), zeros(1, 5, 4), zeros(1, 5, 4), ones(3, 4, dtype: ScalarType.Bool)));
        Assert.Contains("[3, 4]", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => Sdpa(zeros(1, 3, 4), zeros(1, 5, 4), zeros(1, 5, 4), zeros(3, 4)));
        Assert.Contains("[3, 4]", e.Message);
    }
}
