using System.Numerics;
using System.Numerics.Tensors;

namespace TorchSharp;

/// <summary>
/// The elementwise machinery: a binary kernel is written once as four span functions (tensor∘tensor,
/// tensor∘scalar, scalar∘tensor, and one element), and <see cref="Run{T, TOp}"/> applies it to any pair
/// of broadcastable shapes by cutting the output into rows along which each input is either
/// contiguous or a single repeated value.
/// </summary>
internal static class Elementwise
{
    internal interface IBinary<T>
    {
        static abstract T One(T a, T b);
        static abstract void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y);
        static abstract void VS(ReadOnlySpan<T> a, T b, Span<T> y);
        static abstract void SV(T a, ReadOnlySpan<T> b, Span<T> y);
    }

    internal struct Add<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => a + b;
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Add(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Add(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Add(b, a, y);
    }
    internal struct Sub<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => a - b;
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Subtract(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Subtract(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Subtract(a, b, y);
    }
    internal struct Mul<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => a * b;
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Multiply(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Multiply(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Multiply(b, a, y);
    }
    internal struct Div<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => a / b;
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Divide(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Divide(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Divide(a, b, y);
    }
    /// <summary>Elementwise maximum; NaN wins, as in torch.maximum.</summary>
    internal struct Max<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => T.IsNaN(a) || T.IsNaN(b) ? a + b : T.Max(a, b);
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Max(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Max(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Max(b, a, y);
    }
    internal struct Min<T> : IBinary<T> where T : INumber<T>
    {
        public static T One(T a, T b) => T.IsNaN(a) || T.IsNaN(b) ? a + b : T.Min(a, b);
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Min(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y) => TensorPrimitives.Min(a, b, y);
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Min(b, a, y);
    }
    internal struct Pow<T> : IBinary<T> where T : IFloatingPointIeee754<T>
    {
        public static T One(T a, T b) => T.Pow(a, b);
        public static void VV(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Pow(a, b, y);
        public static void VS(ReadOnlySpan<T> a, T b, Span<T> y)
        {
            // Exact fast paths for the exponents that matter (x², √x, 1/x); TensorPrimitives.Pow handles the rest.
            if (b == T.CreateTruncating(2)) TensorPrimitives.Multiply(a, a, y);
            else if (b == T.One) a.CopyTo(y);
            else if (b == T.CreateTruncating(0.5)) TensorPrimitives.Sqrt(a, y);
            else if (b == -T.One) TensorPrimitives.Divide(T.One, a, y);
            else TensorPrimitives.Pow(a, b, y);
        }
        public static void SV(T a, ReadOnlySpan<T> b, Span<T> y) => TensorPrimitives.Pow(a, b, y);
    }

    /// <summary>y = op(a, b) with PyTorch broadcasting. All three tensors have the dtype of T.</summary>
    internal static void Run<T, TOp>(torch.Tensor a, torch.Tensor b, torch.Tensor y) where TOp : IBinary<T>
    {
        var A = a.Arr<T>(); var B = b.Arr<T>(); var Y = y.Arr<T>();
        int n = y._numel;
        if (n == 0) return;
        int grain = Par.Grain(1, 65536);
        if (a._numel == n && b._numel == n)
        {
            Par.For(n, grain, (s, e) => TOp.VV(A.AsSpan(s, e - s), B.AsSpan(s, e - s), Y.AsSpan(s, e - s)));
            return;
        }
        if (b._numel == 1 && a._numel == n)
        {
            T bv = B[0];
            Par.For(n, grain, (s, e) => TOp.VS(A.AsSpan(s, e - s), bv, Y.AsSpan(s, e - s)));
            return;
        }
        if (a._numel == 1 && b._numel == n)
        {
            T av = A[0];
            Par.For(n, grain, (s, e) => TOp.SV(av, B.AsSpan(s, e - s), Y.AsSpan(s, e - s)));
            return;
        }
        var plan = RowPlan.Make(a._shape, b._shape, y._shape);
        int inner = plan.Inner;
        Par.For(plan.Rows, Par.Grain(inner, 65536), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                plan.Offsets(r, out int ao, out int bo);
                var yr = Y.AsSpan(r * inner, inner);
                if (plan.AInner && plan.BInner) TOp.VV(A.AsSpan(ao, inner), B.AsSpan(bo, inner), yr);
                else if (plan.AInner) TOp.VS(A.AsSpan(ao, inner), B[bo], yr);
                else if (plan.BInner) TOp.SV(A[ao], B.AsSpan(bo, inner), yr);
                else yr.Fill(TOp.One(A[ao], B[bo]));
            }
        });
    }

    /// <summary>A broadcast pair of shapes, coalesced into (rows × inner) where, along a row, each input
    /// either advances by 1 (contiguous) or stays put (broadcast).</summary>
    internal sealed class RowPlan
    {
        public int Rows, Inner;
        public bool AInner, BInner;
        private long[] _outer = [];       // sizes of the outer (row) dims, after coalescing
        private long[] _aStride = [], _bStride = [];

        public static RowPlan Make(long[] aShape, long[] bShape, long[] outShape)
        {
            int nd = outShape.Length;
            var sa = Shapes.BroadcastStrides(aShape, outShape);
            var sb = Shapes.BroadcastStrides(bShape, outShape);
            // Drop size-1 dims, then merge neighbours whose strides chain (stride[i] == stride[i+1]·size[i+1]).
            var sizes = new List<long>(); var las = new List<long>(); var lbs = new List<long>();
            for (int i = 0; i < nd; i++)
            {
                if (outShape[i] == 1) continue;
                if (sizes.Count > 0)
                {
                    int k = sizes.Count - 1;
                    bool chainA = las[k] == sa[i] * outShape[i] || (las[k] == 0 && sa[i] == 0);
                    bool chainB = lbs[k] == sb[i] * outShape[i] || (lbs[k] == 0 && sb[i] == 0);
                    if (chainA && chainB) { sizes[k] *= outShape[i]; las[k] = sa[i]; lbs[k] = sb[i]; continue; }
                }
                sizes.Add(outShape[i]); las.Add(sa[i]); lbs.Add(sb[i]);
            }
            if (sizes.Count == 0) { sizes.Add(1); las.Add(0); lbs.Add(0); }
            int last = sizes.Count - 1;
            var plan = new RowPlan
            {
                Inner = (int)sizes[last],
                AInner = las[last] == 1,
                BInner = lbs[last] == 1,
                _outer = sizes.Take(last).ToArray(),
                _aStride = las.Take(last).ToArray(),
                _bStride = lbs.Take(last).ToArray(),
            };
            long rows = 1;
            foreach (var s in plan._outer) rows *= s;
            plan.Rows = (int)rows;
            return plan;
        }

        /// <summary>Where row r starts in each input.</summary>
        public void Offsets(int r, out int ao, out int bo)
        {
            long a = 0, b = 0, rem = r;
            for (int d = _outer.Length - 1; d >= 0; d--)
            {
                long i = rem % _outer[d]; rem /= _outer[d];
                a += i * _aStride[d]; b += i * _bStride[d];
            }
            ao = (int)a; bo = (int)b;
        }
    }
}
