using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TorchSharp;

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
        double v = 1 - ErfcTail(ax);
        return x >= 0 ? v : -v;
    }

    /// <summary>erfc(x) = 1 − erf(x) in double precision, without the cancellation of 1 − erf (fdlibm's erfc).</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return x;
        double ax = Math.Abs(x);
        if (ax < 0.84375) return 1 - Erf(x);                              // erf ≤ 0.77 here: no catastrophic cancellation
        if (ax < 1.25)
        {
            double s = ax - 1;
            double p = pa0 + s * (pa1 + s * (pa2 + s * (pa3 + s * (pa4 + s * (pa5 + s * pa6)))));
            double q = 1 + s * (qa1 + s * (qa2 + s * (qa3 + s * (qa4 + s * (qa5 + s * qa6)))));
            return x >= 0 ? (1 - Erx) - p / q : 1 + (Erx + p / q);
        }
        if (ax >= 28) return x >= 0 ? 0.0 : 2.0;
        double e = ErfcTail(ax);
        return x >= 0 ? e : 2 - e;
    }

    /// <summary>erfc(|x|) for |x| ≥ 1.25: e^(−x² − 0.5625 + R(s)/S(s)) / |x|, s = 1/x².</summary>
    private static double ErfcTail(double ax)
    {
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
        return Math.Exp(-zz * zz - 0.5625) * Math.Exp((zz - ax) * (zz + ax) + R / S) / ax;
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

    // =====================================================================================
    // erf in float lanes, built for speed: two branches, each a plain polynomial (a division costs as
    // much as ten multiply-adds), evaluated for all lanes and selected.
    //   |x| < 1:  erf(x) = x + x·Q(x²), Q = the Taylor series of erf(x)/x − 1 up to x²⁰
    //             (truncation error < 2e-9 relative; keeping the leading 1 out of Q keeps its rounding out).
    //   |x| ≥ 1:  erfc(x) = t·e^(−x² + R(t)),  t = 1/(1 + x/2)  (the form of Numerical Recipes' erfcc),
    //             R of degree 8 fitted by least squares (Chebyshev nodes in t) to log(erfc(x)/t) + x² on
    //             [1, 10] against 100-bit mpmath: erfc relative error < 4e-9, so Φ's left tail is accurate too.
    // Measured against the double-precision erf: ≤ 2 float ulp everywhere (the normal CDF built on it
    // below: ≤ 8 ulp relative, in both tails).
    // =====================================================================================

    private const float tq0 = 0.12837916709551256f;                       // 2/√π − 1
    private const float tq1 = -0.37612638903183754f, tq2 = 0.11283791670955126f, tq3 = -0.026866170645131252f, tq4 = 0.005223977625442188f,
        tq5 = -0.0008548327023450852f, tq6 = 0.00012055332981789664f, tq7 = -1.492565035840625e-05f, tq8 = 1.6462114365889246e-06f,
        tq9 = -1.6365844691234924e-07f, tq10 = 1.4807192815879218e-08f;  // (2/√π)·(−1)ⁿ/(n!(2n+1))
    private const float r0 = -1.2654998760703267f, r1 = 0.9997230838530091f, r2 = 0.3774373409231415f, r3 = 0.07376260328244791f,
        r4 = -0.07981132465700108f, r5 = -0.05170197100937357f, r6 = -0.46763072818561424f, r7 = 0.6563794250491773f,
        r8 = -0.24390424901368915f;

    /// <summary>erf for |x| &lt; 1: x + x·Q(x²).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ErfNear(Vector256<float> x)
    {
        var z = x * x;
        var q = F(F(F(F(F(F(F(F(F(F(Vector256.Create(tq10), z, tq9), z, tq8), z, tq7), z, tq6), z, tq5), z, tq4), z, tq3), z, tq2), z, tq1), z, tq0);
        return Vector256.FusedMultiplyAdd(x, q, x);
    }

    /// <summary>
    /// erfc for ax ≥ 1: t·e^(−ax² + R(t)), t = 1/(1 + ax/2). The exponent reaches −100, where one float rounding
    /// is a relative error of 100·2⁻²⁴ in the result; so it is carried as hi + lo (ax² split exactly with an FMA,
    /// the subtraction's error recovered) and e^(hi + lo) taken as e^hi·(1 + lo). <paramref name="lo"/> is a
    /// small correction to ax itself (the rounding error of a computed argument): −(ax + δ)² ≈ −ax² − 2·ax·δ.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ErfcFar(Vector256<float> ax, Vector256<float> lo)
    {
        var one = Vector256<float>.One;
        ax = Vector256.Min(ax, Vector256.Create(64f));                          // erfc(64) underflows; keeps ∞ − ∞ out (NaN stays NaN)
        var t = one / Vector256.FusedMultiplyAdd(ax, Vector256.Create(0.5f), one);
        var r = F(F(F(F(F(F(F(F(Vector256.Create(r8), t, r7), t, r6), t, r5), t, r4), t, r3), t, r2), t, r1), t, r0);
        var sq = ax * ax;
        var sqLo = Vector256.FusedMultiplyAdd(ax, ax, -sq);                    // ax² = sq + sqLo exactly
        var hi = r - sq;
        var hiErr = r - (hi + sq);                                              // r − sq = hi + hiErr (|sq| ≥ |r|)
        var lo2 = hiErr - sqLo - Vector256.Create(2f) * ax * lo;
        return t * Vector256.Exp(hi) * (one + lo2);
    }

    /// <summary>erf in float lanes (≤ 2 ulp).</summary>
    public static Vector256<float> Erf(Vector256<float> x)
    {
        var ax = Vector256.Abs(x);
        var far = Vector256.CopySign(Vector256<float>.One - ErfcFar(ax, Vector256<float>.Zero), x);
        return Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256<float>.One), ErfNear(x), far);
    }

    /// <summary>
    /// Φ(x) = ½(1 + erf(x/√2)), the standard normal CDF, in float lanes. Where |x/√2| ≥ 1 it uses erfc
    /// directly — Φ = ½·erfc(|a|) for negative x, 1 − ½·erfc(|a|) for positive — so the left tail keeps full
    /// relative precision instead of losing it in 1 + erf ≈ 0.
    /// </summary>
    public static Vector256<float> NormalCdf(Vector256<float> x)
    {
        var half = Vector256.Create(0.5f);
        // a = x/√2 and its rounding error aLo (the exact product minus a, plus x times √½'s own float error):
        // in the far tail Φ's relative error is ≈ 2a·δa, which would otherwise grow like x²·2⁻²⁴.
        var c = Vector256.Create(SqrtHalfHi);
        var a = x * c;
        var xc = Vector256.Min(Vector256.Max(x, Vector256.Create(-100f)), Vector256.Create(100f));   // Φ is 0 or 1 beyond ±100
        var aLo = Vector256.FusedMultiplyAdd(xc, c, -(xc * c)) + xc * Vector256.Create(SqrtHalfLo);
        var aa = Vector256.Abs(a);
        var tail = half * ErfcFar(aa, aLo * Vector256.CopySign(Vector256<float>.One, a));       // |a + aLo| = |a| ± aLo
        var far = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256<float>.Zero), tail, Vector256<float>.One - tail);
        var near = Vector256.FusedMultiplyAdd(half, ErfNear(a), half);
        return Vector256.ConditionalSelect(Vector256.LessThan(aa, Vector256<float>.One), near, far);
    }

    private const float SqrtHalfHi = 0.70710677f;                                     // √½ rounded to float
    private const float SqrtHalfLo = (float)(ActKernels.Sqrt1_2 - (double)SqrtHalfHi);    // what the rounding lost

    /// <summary>Φ(x) in double lanes: ½(1 + erf(x/√2)), PyTorch's formula, with the fdlibm erf.</summary>
    public static Vector256<double> NormalCdf(Vector256<double> x)
    {
        var half = Vector256.Create(0.5);
        return Vector256.FusedMultiplyAdd(half, Erf(x * Vector256.Create(ActKernels.Sqrt1_2)), half);
    }

    /// <summary>Φ for either lane type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> NormalCdf<T>(Vector256<T> x) where T : unmanaged, IFloatingPointIeee754<T>
        => typeof(T) == typeof(float) ? NormalCdf(x.As<T, float>()).As<float, T>() : NormalCdf(x.As<T, double>()).As<double, T>();

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

    /// <summary>gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)).</summary>
    internal struct Gelu<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x) => x * VecMath.NormalCdf(x);
    }

    /// <summary>gelu′(x) = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).</summary>
    internal struct GeluGrad<T> : VecMath.IUnary<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Vector256<T> Invoke(Vector256<T> x)
        {
            var pdf = VecMath.Exp(x * x * VecMath.C<T>(-0.5)) * VecMath.C<T>(InvSqrt2Pi);
            return VecMath.Fma(x, pdf, VecMath.NormalCdf(x));
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
