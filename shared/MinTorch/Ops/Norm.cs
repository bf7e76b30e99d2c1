using System.Numerics;
using System.Runtime.Intrinsics;

namespace TorchSharp;

/// <summary>
/// Layer norm over the last dims, seen as (rows, n). Forward: per row, μ and σ² in float64 accumulators,
/// then y = (x − μ)·rstd·γ + β, written as x·a + c with a = rstd, c = −μ·rstd (as PyTorch's CPU kernel does).
/// Rows are independent, so any thread count gives the same bits; the γ/β gradients, which sum over rows,
/// are accumulated per fixed block of rows and the blocks are added in order afterwards.
/// </summary>
internal static class LayerNormKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Mean and 1/√(σ² + ε) of one row (biased variance).</summary>
    private static (double mean, double rstd) Moments(ReadOnlySpan<T> x, double eps)
    {
        int n = x.Length, i = 0;
        double mean, var;
        if (typeof(T) == typeof(float))
        {
            // One pass: Σx and Σx² in double lanes (E[x²] − E[x]² is safe in double for float data).
            var xs = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(x);
            var s = Vector256<double>.Zero; var q = Vector256<double>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Create(xs.Slice(i, 8)));
                s += lo + hi;
                q = Vector256.FusedMultiplyAdd(lo, lo, q);
                q = Vector256.FusedMultiplyAdd(hi, hi, q);
            }
            double S = Vector256.Sum(s), Q = Vector256.Sum(q);
            for (; i < n; i++) { double v = xs[i]; S += v; Q += v * v; }
            mean = S / n;
            var = Math.Max(Q / n - mean * mean, 0);
        }
        else
        {
            // Two passes for float64 data: the mean, then Σ(x − μ)².
            var xd = System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(x);
            mean = System.Numerics.Tensors.TensorPrimitives.Sum(xd) / n;
            var vm = Vector256.Create(mean);
            var q = Vector256<double>.Zero;
            for (; i <= n - 4; i += 4) { var d = Vector256.Create(xd.Slice(i, 4)) - vm; q = Vector256.FusedMultiplyAdd(d, d, q); }
            double Q = Vector256.Sum(q);
            for (; i < n; i++) { double d = xd[i] - mean; Q += d * d; }
            var = Q / n;
        }
        return (mean, 1 / Math.Sqrt(var + eps));
    }

    public static void Forward(T[] X, T[]? W, T[]? B, T[] Y, double[] mean, double[] rstd, int rows, int n, double eps)
    {
        Par.For(rows, Par.Grain(n, 32768), (r0, r1) =>
        {
            int vw = Vector256<T>.Count;
            for (int r = r0; r < r1; r++)
            {
                var x = new ReadOnlySpan<T>(X, r * n, n);
                var y = new Span<T>(Y, r * n, n);
                var (mu, rs) = Moments(x, eps);
                mean[r] = mu; rstd[r] = rs;
                T a = T.CreateTruncating(rs), c = T.CreateTruncating(-mu * rs);
                var va = Vector256.Create(a); var vc = Vector256.Create(c);
                int j = 0;
                if (W is not null && B is not null)
                {
                    for (; j <= n - vw; j += vw)
                    {
                        var t = VecMath.Fma(Vector256.Create(x.Slice(j, vw)), va, vc);
                        VecMath.Fma(t, Vector256.Create(new ReadOnlySpan<T>(W, j, vw)), Vector256.Create(new ReadOnlySpan<T>(B, j, vw))).CopyTo(y.Slice(j, vw));
                    }
                    for (; j < n; j++) y[j] = T.FusedMultiplyAdd(T.FusedMultiplyAdd(x[j], a, c), W[j], B[j]);
                }
                else if (W is not null)
                {
                    for (; j <= n - vw; j += vw)
                        (VecMath.Fma(Vector256.Create(x.Slice(j, vw)), va, vc) * Vector256.Create(new ReadOnlySpan<T>(W, j, vw))).CopyTo(y.Slice(j, vw));
                    for (; j < n; j++) y[j] = T.FusedMultiplyAdd(x[j], a, c) * W[j];
                }
                else
                {
                    for (; j <= n - vw; j += vw)
                    {
                        var t = VecMath.Fma(Vector256.Create(x.Slice(j, vw)), va, vc);
                        if (B is not null) t += Vector256.Create(new ReadOnlySpan<T>(B, j, vw));
                        t.CopyTo(y.Slice(j, vw));
                    }
                    for (; j < n; j++) y[j] = T.FusedMultiplyAdd(x[j], a, c) + (B is null ? T.Zero : B[j]);
                }
            }
        });
    }

    /// <summary>
    /// One pass per row for all three gradients. With x̂ = (x − μ)·rstd and ĝ = g⊙γ:
    ///   dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)),   dγ = Σ_rows g⊙x̂,   dβ = Σ_rows g.
    /// </summary>
    public static void Backward(T[] G, T[] X, T[]? W, double[] mean, double[] rstd, T[] DX, T[] DW, T[] DB, int rows, int n)
    {
        int rowsPerBlock = Math.Max(1, 32768 / Math.Max(1, n));
        int blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
        // Per-block partial sums of dγ and dβ, from a pool (a fresh large array would cost page faults every step).
        var pw = System.Buffers.ArrayPool<T>.Shared.Rent(blocks * n);
        var pb = System.Buffers.ArrayPool<T>.Shared.Rent(blocks * n);
        Array.Clear(pw, 0, blocks * n);
        Array.Clear(pb, 0, blocks * n);
        Par.For(blocks, 1, (b0, b1) =>
        {
            int vw = Vector256<T>.Count;
            for (int blk = b0; blk < b1; blk++)
            {
                var dwp = new Span<T>(pw, blk * n, n);
                var dbp = new Span<T>(pb, blk * n, n);
                for (int r = blk * rowsPerBlock, rEnd = Math.Min(rows, (blk + 1) * rowsPerBlock); r < rEnd; r++)
                {
                    var x = new ReadOnlySpan<T>(X, r * n, n);
                    var g = new ReadOnlySpan<T>(G, r * n, n);
                    T a = T.CreateTruncating(rstd[r]), c = T.CreateTruncating(-mean[r] * rstd[r]);
                    var va = Vector256.Create(a); var vc = Vector256.Create(c);
                    // pass 1: Σĝ and Σĝx̂, and the γ/β partial sums
                    var s1 = Vector256<T>.Zero; var s2 = Vector256<T>.Zero;
                    int j = 0;
                    for (; j <= n - vw; j += vw)
                    {
                        var xh = VecMath.Fma(Vector256.Create(x.Slice(j, vw)), va, vc);
                        var gv = Vector256.Create(g.Slice(j, vw));
                        var gh = W is null ? gv : gv * Vector256.Create(new ReadOnlySpan<T>(W, j, vw));
                        s1 += gh;
                        s2 = VecMath.Fma(gh, xh, s2);
                        VecMath.Fma(gv, xh, Vector256.Create((ReadOnlySpan<T>)dwp.Slice(j, vw))).CopyTo(dwp.Slice(j, vw));
                        (Vector256.Create((ReadOnlySpan<T>)dbp.Slice(j, vw)) + gv).CopyTo(dbp.Slice(j, vw));
                    }
                    T m1 = Vector256.Sum(s1), m2 = Vector256.Sum(s2);
                    for (int k = j; k < n; k++)
                    {
                        T xh = T.FusedMultiplyAdd(x[k], a, c), gh = W is null ? g[k] : g[k] * W[k];
                        m1 += gh; m2 += gh * xh;
                        dwp[k] += g[k] * xh; dbp[k] += g[k];
                    }
                    T invN = T.One / T.CreateTruncating(n);
                    T k1 = -a * m1 * invN, k2 = -a * m2 * invN;
                    // pass 2: dx = a·ĝ + k1 + k2·x̂
                    var vk1 = Vector256.Create(k1); var vk2 = Vector256.Create(k2);
                    var dx = new Span<T>(DX, r * n, n);
                    for (j = 0; j <= n - vw; j += vw)
                    {
                        var xh = VecMath.Fma(Vector256.Create(x.Slice(j, vw)), va, vc);
                        var gv = Vector256.Create(g.Slice(j, vw));
                        var gh = W is null ? gv : gv * Vector256.Create(new ReadOnlySpan<T>(W, j, vw));
                        VecMath.Fma(va, gh, VecMath.Fma(vk2, xh, vk1)).CopyTo(dx.Slice(j, vw));
                    }
                    for (; j < n; j++)
                    {
                        T xh = T.FusedMultiplyAdd(x[j], a, c), gh = W is null ? g[j] : g[j] * W[j];
                        dx[j] = T.FusedMultiplyAdd(a, gh, T.FusedMultiplyAdd(k2, xh, k1));
                    }
                }
            }
        });
        // Add the block partials in block order (fixed by the shape, not by the threads).
        Array.Clear(DW, 0, n); Array.Clear(DB, 0, n);
        for (int blk = 0; blk < blocks; blk++)
        {
            System.Numerics.Tensors.TensorPrimitives.Add(DW.AsSpan(0, n), new ReadOnlySpan<T>(pw, blk * n, n), DW.AsSpan(0, n));
            System.Numerics.Tensors.TensorPrimitives.Add(DB.AsSpan(0, n), new ReadOnlySpan<T>(pb, blk * n, n), DB.AsSpan(0, n));
        }
        System.Buffers.ArrayPool<T>.Shared.Return(pw);
        System.Buffers.ArrayPool<T>.Shared.Return(pb);
    }
}

public static partial class torch
{
    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>
            /// Layer normalisation over the last <c>normalized_shape.Length</c> dims:
            /// y = (x − μ)/√(σ² + ε) · γ + β, with μ and the biased variance σ² taken over those dims.
            /// </summary>
            /// <remarks>
            /// Backward, with x̂ = (x − μ)·rstd, rstd = 1/√(σ² + ε) and ĝ = g⊙γ:
            ///   dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)),   dγ = Σ g⊙x̂,   dβ = Σ g
            /// (means over the normalised dims, sums over all the others). The two subtracted terms are the
            /// projections that remove the directions μ and σ depend on. When the backward is itself being
            /// recorded (create_graph), it is built from differentiable ops instead of the fused kernel.
            /// </remarks>
            public static Tensor layer_norm(Tensor input, long[] normalized_shape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
                => LayerNormImpl.Apply(input, normalized_shape, weight, bias, eps);
        }
    }

    internal static class LayerNormImpl
    {
        public static Tensor Apply(Tensor x, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps)
        {
            var shape = (long[])normalizedShape.Clone();
            int k = shape.Length;
            if (!x.IsFloat) throw new ArgumentException($"layer_norm: expected a floating-point input, got {x.dtype}");
            if (k == 0) throw new ArgumentException("layer_norm: normalized_shape must have at least one dimension");
            if (k > x.Rank || !Shapes.Equal(x._shape.AsSpan(x.Rank - k), shape))
                throw new ArgumentException($"layer_norm: normalized_shape {Shapes.Str(shape)} expects an input of shape [*, {string.Join(", ", shape)}], but got {x.ShapeString}");
            foreach (var (p, name) in new[] { (weight, "weight"), (bias, "bias") })
            {
                if (p is null) continue;
                if (!Shapes.Equal(p._shape, shape))
                    throw new ArgumentException($"layer_norm: {name} has shape {p.ShapeString} but normalized_shape is {Shapes.Str(shape)}");
                if (p._dtype != x._dtype)
                    throw new ArgumentException($"layer_norm: {name} has dtype {p.dtype} but the input has dtype {x.dtype}");
            }
            int n = (int)Shapes.Numel(shape);
            int rows = n == 0 ? 0 : x._numel / n;
            var y = Tensor.Empty(x._shape, x._dtype);
            var mean = new double[rows];
            var rstd = new double[rows];
            if (x._dtype == ScalarType.Float32)
                LayerNormKernels<float>.Forward(x.Arr<float>(), weight?.Arr<float>(), bias?.Arr<float>(), y.Arr<float>(), mean, rstd, rows, n, eps);
            else
                LayerNormKernels<double>.Forward(x.Arr<double>(), weight?.Arr<double>(), bias?.Arr<double>(), y.Arr<double>(), mean, rstd, rows, n, eps);

            // The three gradients share their work: the first backward function called with a given g
            // computes all of them, the others pick up their part.
            Tensor? cachedFor = null; Tensor?[] cached = new Tensor?[3];
            Tensor Grad(Tensor g, int which)
            {
                if (!ReferenceEquals(cachedFor, g))
                {
                    cached = is_grad_enabled()
                        ? Composite(g, x, weight, shape, rows, n, eps)
                        : Fused(g, x, weight, mean, rstd, shape, rows, n);
                    cachedFor = g;
                }
                var r = cached[which]!;
                cached[which] = null;
                return r;
            }
            var inputs = new List<Tensor> { x };
            var fns = new List<Func<Tensor, Tensor>?> { g => Grad(g, 0) };
            if (weight is not null) { inputs.Add(weight); fns.Add(g => Grad(g, 1)); }
            if (bias is not null) { inputs.Add(bias); fns.Add(g => Grad(g, 2)); }
            return Autograd.Record(y, "layer_norm", inputs.ToArray(), fns.ToArray());
        }

        /// <summary>The fused kernel: used when the backward pass is not itself recorded.</summary>
        private static Tensor?[] Fused(Tensor g, Tensor x, Tensor? weight, double[] mean, double[] rstd, long[] shape, int rows, int n)
        {
            if (g._dtype != x._dtype) g = g.to_type(x._dtype);
            var dx = Tensor.Empty(x._shape, x._dtype);
            var dw = Tensor.Empty(shape, x._dtype);
            var db = Tensor.Empty(shape, x._dtype);
            if (x._dtype == ScalarType.Float32)
                LayerNormKernels<float>.Backward(g.Arr<float>(), x.Arr<float>(), weight?.Arr<float>(), mean, rstd, dx.Arr<float>(), dw.Arr<float>(), db.Arr<float>(), rows, n);
            else
                LayerNormKernels<double>.Backward(g.Arr<double>(), x.Arr<double>(), weight?.Arr<double>(), mean, rstd, dx.Arr<double>(), dw.Arr<double>(), db.Arr<double>(), rows, n);
            return [dx, dw, db];
        }

        /// <summary>The same gradients from differentiable ops, with μ and rstd recomputed from x so that
        /// their dependence on x is part of the graph (needed for second derivatives).</summary>
        private static Tensor?[] Composite(Tensor g, Tensor x, Tensor? weight, long[] shape, int rows, int n, double eps)
        {
            long[] last = [-1];
            var x2 = x.reshape(rows, n);
            var xc = x2.sub(x2.mean(last, keepdim: true));
            var rstd = xc.square().mean(last, keepdim: true).add(eps).rsqrt();
            var xhat = xc.mul(rstd);
            var g2 = g.reshape(rows, n);
            var gh = weight is null ? g2 : g2.mul(weight.reshape(n));
            var dx = rstd.mul(gh.sub(gh.mean(last, keepdim: true)).sub(xhat.mul(gh.mul(xhat).mean(last, keepdim: true))));
            var dw = g2.mul(xhat).sum(0).reshape(shape);
            var db = g2.sum(0).reshape(shape);
            return [dx.reshape(x._shape), dw, db];
        }
    }
}
