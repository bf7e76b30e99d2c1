using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MinTorch;

/// <summary>
/// Vector math the activations need and .NET does not ship: erf, an accurate log1p, and a driver that
/// applies a Vector256 function to a span (the last partial vector is padded, so every element is
/// computed by the same formula wherever it sits — results never depend on how work was split).
/// </summary>
internal static class VecMath
{
    // =====================================================================================
    // erf(x) = 2/√π ∫₀ˣ e^(−t²) dt.
    //
    // The method is Sun's fdlibm s_erf.c (W. J. Cody-style rational approximations on four intervals
    // of |x|), written out here:
    //   |x| < 0.84375     erf(x) = x + x·P(x²)/Q(x²)                    (P/Q ≈ 2/√π − 1 near 0)
    //   0.84375 ≤ |x| < 1.25  erf(x) = ±(erx + P(s)/Q(s)),  s = |x| − 1  (erx = erf(1) rounded to float)
    //   1.25 ≤ |x| < 6    erf(x) = ±(1 − e^(−x² − 0.5625 + R(s)/S(s)) / |x|),  s = 1/x²
    //                     (two coefficient sets, split at |x| = 1/0.35)
    //   |x| ≥ 6           erf(x) = ±1 (to double precision)
    // Coefficients are fdlibm's; checked against 120-bit mpmath: ≤ 0.83 ulp on 45,000 points.
    // =====================================================================================

    private const double Erx = 8.45062911510467529297e-01;
    private const double Efx = 1.28379167095512586316e-01;
    // |x| < 0.84375: P and Q in z = x²
    private const double pp0 = 1.28379167095512558561e-01, pp1 = -3.25042107247001499370e-01, pp2 = -2.84817495755985104766e-02,
        pp3 = -5.77027029648944159157e-03, pp4 = -2.37630166566501626084e-05;
    private const double qq1 = 3.97917223959155352819e-01, qq2 = 6.50222499887672944485e-02, qq3 = 5.08130628187576562776e-03,
        qq4 = 1.32494738004321644526e-04, qq5 = -3.96022827877536812320e-06;
    // 0.84375 ≤ |x| < 1.25: in s = |x| − 1
    private const double pa0 = -2.36211856075265944077e-03, pa1 = 4.14856118683748331666e-01, pa2 = -3.72207876035701323847e-01,
        pa3 = 3.18346619901161753674e-01, pa4 = -1.10894694282396677476e-01, pa5 = 3.54783043256182359371e-02, pa6 = -2.16637559486879084300e-03;
    private const double qa1 = 1.06420880400844228286e-01, qa2 = 5.40397917702171048937e-01, qa3 = 7.18286544141962662868e-02,
        qa4 = 1.26171219808761642112e-01, qa5 = 1.36370839120290507362e-02, qa6 = 1.19844998467991074170e-02;
    // 1.25 ≤ |x| < 1/0.35: in s = 1/x²
    private const double ra0 = -9.86494403484714822705e-03, ra1 = -6.93858572707181764372e-01, ra2 = -1.05586262253232909814e+01,
        ra3 = -6.23753324503260060396e+01, ra4 = -1.62396669462573470355e+02, ra5 = -1.84605092906711035994e+02,
        ra6 = -8.12874355063065934246e+01, ra7 = -9.81432934416914548592e+00;
    private const double sa1 = 1.96512716674392571292e+01, sa2 = 1.37657754143519042600e+02, sa3 = 4.34565877475229228821e+02,
        sa4 = 6.45387271733267880336e+02, sa5 = 4.29008140027567833386e+02, sa6 = 1.08635005541779435134e+02,
        sa7 = 6.57024977031928170135e+00, sa8 = -6.04244152148580987438e-02;
    // 1/0.35 ≤ |x| < 6
    private const double rb0 = -9.86494292470009928597e-03, rb1 = -7.99283237680523006574e-01, rb2 = -1.77579549177547519889e+01,
        rb3 = -1.60636384855821916062e+02, rb4 = -6.37566443368389627722e+02, rb5 = -1.02509513161107724954e+03,
        rb6 = -4.83519191608651397019e+02;
    private const double sb1 = 3.03380607434824582924e+01, sb2 = 3.25792512996573918826e+02, sb3 = 1.53672958608443695994e+03,
        sb4 = 3.19985821950859553908e+03, sb5 = 2.55305040643316442583e+03, sb6 = 4.74528541206955367215e+02,
        sb7 = -2.24409524465858183362e+01;

    /// <summary>erf in double precision (fdlibm's method, ≤ 1 ulp).</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        double ax = Math.Abs(x);
        if (ax < 0.84375)
        {
            if (ax < 3.725290298461914e-09) return x + Efx * x;          // |x| < 2⁻²⁸: erf(x) ≈ 2x/√π
            double z = x * x;
            double p = pp0 + z * (pp1 + z * (pp2 + z * (pp3 + z * pp4)));
            double q = 1 + z * (qq1 + z * (qq2 + z * (qq3 + z * (qq4 + z * qq5))));
            return x + x * (p / q);
        }
        if (ax < 1.25)
        {
            double s = ax - 1;
            double p = pa0 + s * (pa1 + s * (pa2 + s * (pa3 + s * (pa4 + s * (pa5 + s * pa6)))));
            double q = 1 + s * (qa1 + s * (qa2 + s * (qa3 + s * (qa4 + s * (qa5 + s * qa6)))));
            return x >= 0 ? Erx + p / q : -Erx - p / q;
        }
        if (ax >= 6) return x >= 0 ? 1.0 : -1.0;
        double w = 1 / (ax * ax), R, S;
        if (ax < 1 / 0.35)
        {
            R = ra0 + w * (ra1 + w * (ra2 + w * (ra3 + w * (ra4 + w * (ra5 + w * (ra6 + w * ra7))))));
            S = 1 + w * (sa1 + w * (sa2 + w * (sa3 + w * (sa4 + w * (sa5 + w * (sa6 + w * (sa7 + w * sa8)))))));
        }
        else
        {
            R = rb0 + w * (rb1 + w * (rb2 + w * (rb3 + w * (rb4 + w * (rb5 + w * rb6)))));
            S = 1 + w * (sb1 + w * (sb2 + w * (sb3 + w * (sb4 + w * (sb5 + w * (sb6 + w * sb7))))));
        }
        // e^(−x²) with x² split as zz² + (x² − zz²), zz = |x| with its low 32 bits cleared, so zz² is exact.
        double zz = BitConverter.Int64BitsToDouble(BitConverter.DoubleToInt64Bits(ax) & unchecked((long)0xFFFFFFFF00000000));
        double e = Math.Exp(-zz * zz - 0.5625) * Math.Exp((zz - ax) * (zz + ax) + R / S);
        double v = 1 - e / ax;
        return x >= 0 ? v : -v;
    }

    /// <summary>The same approximations, evaluated lane-wise: every lane computes each branch and keeps
    /// its own. The tail branch uses one exp of (−x² − 0.5625 + R/S); its rounding is damped by the
    /// factor e^(−x²)/|x| ≤ 0.08, so the result stays within 1 ulp of <see cref="Erf(double)"/>.</summary>
    public static Vector256<double> Erf(Vector256<double> x)
    {
        var one = Vector256<double>.One;
        var ax = Vector256.Abs(x);
        var z = x * x;
        // |x| < 0.84375
        var p = F(F(F(F(Vector256.Create(pp4), z, pp3), z, pp2), z, pp1), z, pp0);
        var q = F(F(F(F(F(Vector256.Create(qq5), z, qq4), z, qq3), z, qq2), z, qq1), z, 1);
        var near0 = Vector256.FusedMultiplyAdd(x, p / q, x);
        // 0.84375 ≤ |x| < 1.25
        var s = ax - one;
        var pa = F(F(F(F(F(F(Vector256.Create(pa6), s, pa5), s, pa4), s, pa3), s, pa2), s, pa1), s, pa0);
        var qa = F(F(F(F(F(F(Vector256.Create(qa6), s, qa5), s, qa4), s, qa3), s, qa2), s, qa1), s, 1);
        var near1 = Vector256.Create(Erx) + pa / qa;
        // 1.25 ≤ |x| < 6
        var w = one / z;
        var ra = F(F(F(F(F(F(F(Vector256.Create(ra7), w, ra6), w, ra5), w, ra4), w, ra3), w, ra2), w, ra1), w, ra0);
        var sa = F(F(F(F(F(F(F(F(Vector256.Create(sa8), w, sa7), w, sa6), w, sa5), w, sa4), w, sa3), w, sa2), w, sa1), w, 1);
        var rb = F(F(F(F(F(F(Vector256.Create(rb6), w, rb5), w, rb4), w, rb3), w, rb2), w, rb1), w, rb0);
        var sb = F(F(F(F(F(F(F(Vector256.Create(sb7), w, sb6), w, sb5), w, sb4), w, sb3), w, sb2), w, sb1), w, 1);
        var rs = Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(1 / 0.35)), ra / sa, rb / sb);
        var far = one - Vector256.Exp(rs - z - Vector256.Create(0.5625)) / ax;
        far = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(ax, Vector256.Create(6.0)), one, far);
        var tail = Vector256.CopySign(Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(1.25)), near1, far), x);
        return Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(0.84375)), near0, tail);
    }

    /// <summary>erf in float lanes: the same formulas with the coefficients rounded to float (≤ 1 float ulp).</summary>
    public static Vector256<float> Erf(Vector256<float> x)
    {
        var one = Vector256<float>.One;
        var ax = Vector256.Abs(x);
        var z = x * x;
        var p = F(F(F(F(Vector256.Create((float)pp4), z, (float)pp3), z, (float)pp2), z, (float)pp1), z, (float)pp0);
        var q = F(F(F(F(F(Vector256.Create((float)qq5), z, (float)qq4), z, (float)qq3), z, (float)qq2), z, (float)qq1), z, 1f);
        var near0 = Vector256.FusedMultiplyAdd(x, p / q, x);
        var s = ax - one;
        var pa = F(F(F(F(F(F(Vector256.Create((float)pa6), s, (float)pa5), s, (float)pa4), s, (float)pa3), s, (float)pa2), s, (float)pa1), s, (float)pa0);
        var qa = F(F(F(F(F(F(Vector256.Create((float)qa6), s, (float)qa5), s, (float)qa4), s, (float)qa3), s, (float)qa2), s, (float)qa1), s, 1f);
        var near1 = Vector256.Create((float)Erx) + pa / qa;
        var w = one / z;
        var ra = F(F(F(F(F(F(F(Vector256.Create((float)ra7), w, (float)ra6), w, (float)ra5), w, (float)ra4), w, (float)ra3), w, (float)ra2), w, (float)ra1), w, (float)ra0);
        var sa = F(F(F(F(F(F(F(F(Vector256.Create((float)sa8), w, (float)sa7), w, (float)sa6), w, (float)sa5), w, (float)sa4), w, (float)sa3), w, (float)sa2), w, (float)sa1), w, 1f);
        var rb = F(F(F(F(F(F(Vector256.Create((float)rb6), w, (float)rb5), w, (float)rb4), w, (float)rb3), w, (float)rb2), w, (float)rb1), w, (float)rb0);
        var sb = F(F(F(F(F(F(F(Vector256.Create((float)sb7), w, (float)sb6), w, (float)sb5), w, (float)sb4), w, (float)sb3), w, (float)sb2), w, (float)sb1), w, 1f);
        var rs = Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create((float)(1 / 0.35))), ra / sa, rb / sb);
        var far = one - Vector256.Exp(rs - z - Vector256.Create(0.5625f)) / ax;
        far = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(ax, Vector256.Create(6f)), one, far);
        var tail = Vector256.CopySign(Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(1.25f)), near1, far), x);
        return Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(0.84375f)), near0, tail);
    }

    /// <summary>erf for either lane type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Erf<T>(Vector256<T> x) where T : unmanaged, IFloatingPointIeee754<T>
        => typeof(T) == typeof(float) ? Erf(x.As<T, float>()).As<float, T>() : Erf(x.As<T, double>()).As<double, T>();

    /// <summary>One Horner step r·z + c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> F(Vector256<double> r, Vector256<double> z, double c) => Vector256.FusedMultiplyAdd(r, z, Vector256.Create(c));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> F(Vector256<float> r, Vector256<float> z, float c) => Vector256.FusedMultiplyAdd(r, z, Vector256.Create(c));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> C<T>(double v) where T : unmanaged, IFloatingPointIeee754<T>
        => typeof(T) == typeof(float) ? Vector256.Create((float)v).As<float, T>() : Vector256.Create(v).As<double, T>();

    /// <summary>a·b + c with one rounding.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(a.As<T, float>(), b.As<T, float>(), c.As<T, float>()).As<float, T>();
        return Vector256.FusedMultiplyAdd(a.As<T, double>(), b.As<T, double>(), c.As<T, double>()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Exp<T>(Vector256<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) return Vector256.Exp(x.As<T, float>()).As<float, T>();
        return Vector256.Exp(x.As<T, double>()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Log<T>(Vector256<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) return Vector256.Log(x.As<T, float>()).As<float, T>();
        return Vector256.Log(x.As<T, double>()).As<double, T>();
    }

    /// <summary>log(1 + t), accurate also for tiny t (Goldberg's trick: with u = 1 ⊕ t rounded,
    /// log(1 + t) ≈ log(u)·t/(u − 1), exact to a few ulp; t itself where u rounds to 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Log1p<T>(Vector256<T> t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var u = Vector256<T>.One + t;
        var d = u - Vector256<T>.One;
        var r = Log(u) * (t / d);
        return Vector256.ConditionalSelect(Vector256.Equals(d, Vector256<T>.Zero), t, r);
    }

    /// <summary>A lane-wise function y = f(x).</summary>
    internal interface IUnary<T> where T : unmanaged
    {
        Vector256<T> Invoke(Vector256<T> x);
    }

    /// <summary>y[i] = f(x[i]) over a span; the last partial vector goes through a padded copy.</summary>
    public static void Map<T, TOp>(ReadOnlySpan<T> x, Span<T> y, TOp op) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnary<T>
    {
        int n = x.Length, w = Vector256<T>.Count, i = 0;
        for (; i <= n - w; i += w) op.Invoke(Vector256.Create(x.Slice(i, w))).CopyTo(y.Slice(i, w));
        if (i < n)
        {
            Span<T> buf = stackalloc T[w];
            buf.Clear();
            x.Slice(i).CopyTo(buf);
            op.Invoke(Vector256.Create((ReadOnlySpan<T>)buf)).CopyTo(buf);
            buf.Slice(0, n - i).CopyTo(y.Slice(i));
        }
    }

    /// <summary>y = f(x) elementwise for a float32/float64 tensor, in parallel over fixed 16K-element blocks.</summary>
    public static torch.Tensor MapTensor<TF, TD>(torch.Tensor x, string op, TF f, TD d) where TF : struct, IUnary<float> where TD : struct, IUnary<double>
    {
        if (!x.IsFloat) throw new ArgumentException($"{op}: expected a floating-point tensor, got {x.dtype} (convert with .to_type(torch.float32))");
        var y = torch.Tensor.Empty(x._shape, x._dtype);
        if (x._dtype == ScalarType.Float32)
        {
            var X = x.Arr<float>(); var Y = y.Arr<float>();
            Par.For(x._numel, 16384, (s, e) => Map<float, TF>(X.AsSpan(s, e - s), Y.AsSpan(s, e - s), f));
        }
        else
        {
            var X = x.Arr<double>(); var Y = y.Arr<double>();
            Par.For(x._numel, 16384, (s, e) => Map<double, TD>(X.AsSpan(s, e - s), Y.AsSpan(s, e - s), d));
        }
        return y;
    }
}

/// <summary>The lane-wise kernels behind the activations (one struct per function, generic over float/double).</summary>
internal static class ActKernels
{
    internal const double Sqrt1_2 = 0.70710678118654752440;     // 1/√2
    internal const double InvSqrt2Pi = 0.39894228040143267794;  // 1/√(2π)

    /// <summary>erf(x).</summary>
    internal struct Erf<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x) => VecMath.Erf(x);
    }

    /// <summary>gelu(x) = ½x(1 + erf(x/√2)).</summary>
    internal struct Gelu<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x)
        {
            var h = x * VecMath.C<T>(0.5);
            return VecMath.Fma(h, VecMath.Erf(x * VecMath.C<T>(Sqrt1_2)), h);
        }
    }

    /// <summary>gelu′(x) = Φ(x) + x·φ(x) = ½(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π).</summary>
    internal struct GeluGrad<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x)
        {
            var half = VecMath.C<T>(0.5);
            var cdf = VecMath.Fma(half, VecMath.Erf(x * VecMath.C<T>(Sqrt1_2)), half);
            var pdf = VecMath.Exp(x * x * VecMath.C<T>(-0.5)) * VecMath.C<T>(InvSqrt2Pi);
            return VecMath.Fma(x, pdf, cdf);
        }
    }

    /// <summary>log σ(x) = min(x, 0) − log(1 + e^(−|x|)): no overflow for any x.</summary>
    internal struct LogSigmoid<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x)
            => Vector256.Min(x, Vector256<T>.Zero) - VecMath.Log1p(VecMath.Exp(-Vector256.Abs(x)));
    }

    /// <summary>softplus(x) = log(1 + e^(βx))/β, and x itself where βx &gt; threshold.</summary>
    internal struct Softplus<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Beta, Threshold;
        public Vector256<T> Invoke(Vector256<T> x)
        {
            var b = Vector256.Create(Beta);
            var z = x * b;
            // log(1 + eᶻ) = max(z, 0) + log(1 + e^(−|z|)) stays finite for large z too.
            var sp = (Vector256.Max(z, Vector256<T>.Zero) + VecMath.Log1p(VecMath.Exp(-Vector256.Abs(z)))) / b;
            return Vector256.ConditionalSelect(Vector256.GreaterThan(z, Vector256.Create(Threshold)), x, sp);
        }
    }
}

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Activations. Each forward is one vectorised pass; each backward multiplies g by the local
        // derivative, itself written as a recorded op so that it can be differentiated again.
        // =====================================================================================

        /// <summary>y = erf(x).   dy/dx = (2/√π)·e^(−x²).</summary>
        public Tensor erf()
        {
            var x = this;
            var y = VecMath.MapTensor(x, "erf", new ActKernels.Erf<float>(), new ActKernels.Erf<double>());
            return Autograd.Record(y, "erf", x, g => g.mul(x.square().neg().exp().mul(2 / Math.Sqrt(Math.PI))));
        }

        /// <summary>
        /// GELU, exact (erf) form — PyTorch's default: y = x·Φ(x) = ½x(1 + erf(x/√2)), with Φ the
        /// standard normal CDF.   dy/dx = Φ(x) + x·φ(x), with φ(x) = e^(−x²/2)/√(2π) the normal density.
        /// </summary>
        public Tensor gelu()
        {
            var x = this;
            var y = VecMath.MapTensor(x, "gelu", new ActKernels.Gelu<float>(), new ActKernels.Gelu<double>());
            return Autograd.Record(y, "gelu", x, g => g.mul(x.GeluDerivative()));
        }

        /// <summary>GELU in place (refused on tensors that are part of a graph).</summary>
        public Tensor gelu_() => OverwriteWith("gelu_", gelu);

        /// <summary>d(x) = Φ(x) + x·φ(x), gelu's derivative.   dd/dx = 2φ(x) + x·φ′(x) = φ(x)·(2 − x²), since φ′(x) = −x·φ(x).</summary>
        internal Tensor GeluDerivative()
        {
            var x = this;
            var d = VecMath.MapTensor(x, "gelu", new ActKernels.GeluGrad<float>(), new ActKernels.GeluGrad<double>());
            return Autograd.Record(d, "gelu_backward", x, g => g.mul(x.square().rsub(2).mul(NormalPdf(x))));
        }

        /// <summary>φ(x) = e^(−x²/2)/√(2π), differentiable.</summary>
        private static Tensor NormalPdf(Tensor x) => x.square().mul(-0.5).exp().mul(ActKernels.InvSqrt2Pi);

        /// <summary>y = log σ(x) = −softplus(−x), computed as min(x, 0) − log(1 + e^(−|x|)) so that it is finite
        /// for every x (log σ(−1000) = −1000).   dy/dx = 1 − σ(x) = σ(−x).</summary>
        public Tensor log_sigmoid()
        {
            var x = this;
            var y = VecMath.MapTensor(x, "log_sigmoid", new ActKernels.LogSigmoid<float>(), new ActKernels.LogSigmoid<double>());
            return Autograd.Record(y, "log_sigmoid", x, g => g.mul(x.neg().sigmoid()));
        }

        /// <summary>y = log(1 + e^(βx))/β, and y = x where βx &gt; threshold (where the two agree to float precision).
        ///   dy/dx = σ(βx) (1 above the threshold).</summary>
        public Tensor softplus(double beta = 1.0, double threshold = 20.0)
        {
            var x = this;
            var y = VecMath.MapTensor(x, "softplus",
                new ActKernels.Softplus<float> { Beta = (float)beta, Threshold = (float)threshold },
                new ActKernels.Softplus<double> { Beta = beta, Threshold = threshold });
            return Autograd.Record(y, "softplus", x, g =>
            {
                var bx = x.mul(beta);
                var linear = bx.gt(threshold).to_type(x._dtype);      // constant masks: where y = x the slope is 1
                return g.mul(bx.sigmoid().mul(linear.rsub(1)).add(linear));
            });
        }

        /// <summary>SiLU (swish): y = x·σ(x).   dy/dx = σ(x)(1 + x(1 − σ(x))) (composed from mul and sigmoid).</summary>
        public Tensor silu() => mul(sigmoid());

        /// <summary>Computes <paramref name="f"/>() and writes the result into this tensor's storage.</summary>
        internal Tensor OverwriteWith(string op, Func<Tensor> f)
        {
            CheckInPlace(op);
            Tensor y;
            using (no_grad()) y = f();
            Array.Copy(y._storage, _storage, _numel);
            return this;
        }
    }

    public static Tensor erf(Tensor input) => input.erf();
}
