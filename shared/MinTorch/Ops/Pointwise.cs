using System.Numerics;
using System.Numerics.Tensors;

namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        internal enum UnOp { Exp, Log, Log1p, Sqrt, Rsqrt, Neg, Abs, Sigmoid, Tanh, Relu, Sign, Reciprocal, Sin, Cos }

        /// <summary>Forward only: y = f(x) elementwise, with TensorPrimitives' SIMD kernels, split across cores for large tensors.</summary>
        internal static Tensor UnaryForward(Tensor x, UnOp op, string name)
        {
            if (!x.IsFloat)
            {
                if (op == UnOp.Neg && x._dtype == ScalarType.Int64) { var yi = Empty(x._shape, x._dtype); TensorPrimitives.Negate<long>(x.RSpan<long>(), yi.Span<long>()); return yi; }
                if (op == UnOp.Abs && x._dtype == ScalarType.Int64) { var yi = Empty(x._shape, x._dtype); TensorPrimitives.Abs<long>(x.RSpan<long>(), yi.Span<long>()); return yi; }
                throw new ArgumentException($"{name}: expected a floating-point tensor, got {x._dtype} (convert with .to_type(torch.float32))");
            }
            var y = Empty(x._shape, x._dtype);
            if (x._dtype == ScalarType.Float32) Apply<float>(x, y, op); else Apply<double>(x, y, op);
            return y;
        }

        private static void Apply<T>(Tensor x, Tensor y, UnOp op) where T : unmanaged, IFloatingPointIeee754<T>
        {
            var X = x.Arr<T>(); var Y = y.Arr<T>();
            Par.For(x._numel, 32768, (s, e) =>
            {
                ReadOnlySpan<T> a = X.AsSpan(s, e - s); Span<T> d = Y.AsSpan(s, e - s);
                switch (op)
                {
                    case UnOp.Exp: TensorPrimitives.Exp(a, d); break;
                    case UnOp.Log: TensorPrimitives.Log(a, d); break;
                    case UnOp.Log1p: TensorPrimitives.LogP1(a, d); break;
                    case UnOp.Sqrt: TensorPrimitives.Sqrt(a, d); break;
                    case UnOp.Rsqrt: TensorPrimitives.ReciprocalSqrt(a, d); break;
                    case UnOp.Neg: TensorPrimitives.Negate(a, d); break;
                    case UnOp.Abs: TensorPrimitives.Abs(a, d); break;
                    case UnOp.Sigmoid: TensorPrimitives.Sigmoid(a, d); break;
                    case UnOp.Tanh: TensorPrimitives.Tanh(a, d); break;
                    case UnOp.Relu: TensorPrimitives.Max(a, T.Zero, d); break;
                    case UnOp.Reciprocal: TensorPrimitives.Reciprocal(a, d); break;
                    case UnOp.Sin: TensorPrimitives.Sin(a, d); break;
                    case UnOp.Cos: TensorPrimitives.Cos(a, d); break;
                    case UnOp.Sign: for (int i = 0; i < a.Length; i++) d[i] = T.IsNaN(a[i]) ? a[i] : T.CreateTruncating(T.Sign(a[i])); break;
                }
            });
        }

        // Each op: the forward, then the local derivative the chain rule multiplies g by.

        /// <summary>y = eˣ.   dy/dx = eˣ = y.</summary>
        public Tensor exp() { var y = UnaryForward(this, UnOp.Exp, "exp"); return Autograd.Record(y, "exp", this, g => g.mul(y)); }

        /// <summary>y = ln x.   dy/dx = 1/x.</summary>
        public Tensor log() { var x = this; var y = UnaryForward(x, UnOp.Log, "log"); return Autograd.Record(y, "log", x, g => g.div(x)); }

        /// <summary>y = ln(1 + x), accurate for small x.   dy/dx = 1/(1 + x).</summary>
        public Tensor log1p() { var x = this; var y = UnaryForward(x, UnOp.Log1p, "log1p"); return Autograd.Record(y, "log1p", x, g => g.div(x.add(1))); }

        /// <summary>y = √x.   dy/dx = 1/(2√x) = 1/(2y).</summary>
        public Tensor sqrt() { var y = UnaryForward(this, UnOp.Sqrt, "sqrt"); return Autograd.Record(y, "sqrt", this, g => g.div(y.mul(2))); }

        /// <summary>y = 1/√x.   dy/dx = −½·x^(−3/2) = −½·y³.</summary>
        public Tensor rsqrt() { var y = UnaryForward(this, UnOp.Rsqrt, "rsqrt"); return Autograd.Record(y, "rsqrt", this, g => g.mul(y.pow(3)).mul(-0.5)); }

        /// <summary>y = 1/x.   dy/dx = −1/x² = −y².</summary>
        public Tensor reciprocal() { var y = UnaryForward(this, UnOp.Reciprocal, "reciprocal"); return Autograd.Record(y, "reciprocal", this, g => g.mul(y.square()).neg()); }

        /// <summary>y = −x.   dy/dx = −1.</summary>
        public Tensor neg() { var y = UnaryForward(this, UnOp.Neg, "neg"); return Autograd.Record(y, "neg", this, g => g.neg()); }
        public Tensor negative() => neg();

        /// <summary>y = |x|.   dy/dx = sign(x) (0 at 0, as PyTorch).</summary>
        public Tensor abs() { var x = this; var y = UnaryForward(x, UnOp.Abs, "abs"); return Autograd.Record(y, "abs", x, g => g.mul(x.sign())); }

        /// <summary>y = sign(x) ∈ {−1, 0, 1}. Piecewise constant: its gradient is zero.</summary>
        public Tensor sign() { var y = UnaryForward(this, UnOp.Sign, "sign"); return Autograd.Record(y, "sign", this, g => zeros_like(g)); }

        /// <summary>y = σ(x) = 1/(1 + e⁻ˣ).   dy/dx = σ(x)(1 − σ(x)) = y(1 − y).</summary>
        public Tensor sigmoid() { var y = UnaryForward(this, UnOp.Sigmoid, "sigmoid"); return Autograd.Record(y, "sigmoid", this, g => g.mul(y).mul(y.rsub(1))); }

        /// <summary>y = tanh x.   dy/dx = 1 − tanh²x = 1 − y².</summary>
        public Tensor tanh() { var y = UnaryForward(this, UnOp.Tanh, "tanh"); return Autograd.Record(y, "tanh", this, g => g.mul(y.square().rsub(1))); }

        /// <summary>y = max(x, 0).   dy/dx = 1 where x &gt; 0, else 0.</summary>
        public Tensor relu() { var x = this; var y = UnaryForward(x, UnOp.Relu, "relu"); return Autograd.Record(y, "relu", x, g => g.mul(x.gt(0).to_type(g._dtype))); }

        /// <summary>y = sin x.   dy/dx = cos x.</summary>
        public Tensor sin() { var x = this; var y = UnaryForward(x, UnOp.Sin, "sin"); return Autograd.Record(y, "sin", x, g => g.mul(x.cos())); }

        /// <summary>y = cos x.   dy/dx = −sin x.</summary>
        public Tensor cos() { var x = this; var y = UnaryForward(x, UnOp.Cos, "cos"); return Autograd.Record(y, "cos", x, g => g.mul(x.sin()).neg()); }

        /// <summary>y = min(max(x, min), max).   dy/dx = 1 inside [min, max], 0 where clamped.</summary>
        public Tensor clamp(Scalar? min = null, Scalar? max = null)
        {
            if (min is null && max is null) throw new ArgumentException("clamp: at least one of min and max must be given");
            var x = this;
            var y = x;
            using (no_grad())
            {
                if (min is Scalar lo) y = y.maximum(lo);
                if (max is Scalar hi) y = y.minimum(hi);
                if (ReferenceEquals(y, x)) y = x.clone();
            }
            y = y.detach();
            return Autograd.Record(y, "clamp", x, g =>
            {
                var inside = ones_like(x, ScalarType.Bool);
                if (min is Scalar lo) inside = inside.logical_and(x.ge(lo));
                if (max is Scalar hi) inside = inside.logical_and(x.le(hi));
                return g.mul(inside.to_type(g._dtype));
            });
        }
        public Tensor clip(Scalar? min = null, Scalar? max = null) => clamp(min, max);

        /// <summary>Tensor bounds: y = min(max(x, min), max) elementwise, with the gradient split as in maximum/minimum.</summary>
        public Tensor clamp(Tensor? min = null, Tensor? max = null)
        {
            var y = this;
            if (min is not null) y = y.maximum(min);
            if (max is not null) y = y.minimum(max);
            return ReferenceEquals(y, this) ? clone() : y;
        }

        // ----- comparisons and logic (no gradient; results are bool tensors)

        internal enum CmpOp { Eq, Ne, Lt, Le, Gt, Ge }

        private static Tensor Compare(Tensor a, Tensor b, CmpOp op, string name)
        {
            var type = Promote(a, b);
            if (type == ScalarType.Bool) type = ScalarType.Int64;
            var shape = Shapes.Equal(a._shape, b._shape) ? a._shape : Shapes.Broadcast(a._shape, b._shape, name);
            if (a._dtype != type) a = a.detach().to_type(type);
            if (b._dtype != type) b = b.detach().to_type(type);
            var y = Empty(shape, ScalarType.Bool);
            switch (type)
            {
                case ScalarType.Float32: CompareKernel<float>(a, b, y, op); break;
                case ScalarType.Float64: CompareKernel<double>(a, b, y, op); break;
                default: CompareKernel<long>(a, b, y, op); break;
            }
            return y;
        }

        private static void CompareKernel<T>(Tensor a, Tensor b, Tensor y, CmpOp op) where T : INumber<T>
        {
            var A = a.Arr<T>(); var B = b.Arr<T>(); var Y = y.Arr<bool>();
            var plan = Elementwise.RowPlan.Make(a._shape, b._shape, y._shape);
            int inner = plan.Inner;
            for (int r = 0; r < plan.Rows; r++)
            {
                plan.Offsets(r, out int ao, out int bo);
                int sa = plan.AInner ? 1 : 0, sb = plan.BInner ? 1 : 0, yo = r * inner;
                for (int i = 0; i < inner; i++)
                {
                    T u = A[ao + i * sa], v = B[bo + i * sb];
                    Y[yo + i] = op switch
                    {
                        CmpOp.Eq => u == v, CmpOp.Ne => u != v, CmpOp.Lt => u < v,
                        CmpOp.Le => u <= v, CmpOp.Gt => u > v, _ => u >= v,
                    };
                }
            }
        }

        private Tensor Compare(Scalar s, CmpOp op, string name) => Compare(this, ScalarTensor(s, Promote(this, s) == ScalarType.Bool ? ScalarType.Int64 : Promote(this, s)), op, name);

        public Tensor eq(Tensor other) => Compare(this, other, CmpOp.Eq, "eq");
        public Tensor ne(Tensor other) => Compare(this, other, CmpOp.Ne, "ne");
        public Tensor lt(Tensor other) => Compare(this, other, CmpOp.Lt, "lt");
        public Tensor le(Tensor other) => Compare(this, other, CmpOp.Le, "le");
        public Tensor gt(Tensor other) => Compare(this, other, CmpOp.Gt, "gt");
        public Tensor ge(Tensor other) => Compare(this, other, CmpOp.Ge, "ge");
        public Tensor eq(Scalar other) => Compare(other, CmpOp.Eq, "eq");
        public Tensor ne(Scalar other) => Compare(other, CmpOp.Ne, "ne");
        public Tensor lt(Scalar other) => Compare(other, CmpOp.Lt, "lt");
        public Tensor le(Scalar other) => Compare(other, CmpOp.Le, "le");
        public Tensor gt(Scalar other) => Compare(other, CmpOp.Gt, "gt");
        public Tensor ge(Scalar other) => Compare(other, CmpOp.Ge, "ge");

        public static Tensor operator <(Tensor a, Tensor b) => a.lt(b);
        public static Tensor operator <=(Tensor a, Tensor b) => a.le(b);
        public static Tensor operator >(Tensor a, Tensor b) => a.gt(b);
        public static Tensor operator >=(Tensor a, Tensor b) => a.ge(b);
        public static Tensor operator <(Tensor a, Scalar b) => a.lt(b);
        public static Tensor operator <=(Tensor a, Scalar b) => a.le(b);
        public static Tensor operator >(Tensor a, Scalar b) => a.gt(b);
        public static Tensor operator >=(Tensor a, Scalar b) => a.ge(b);
        public static Tensor operator <(Scalar a, Tensor b) => b.gt(a);
        public static Tensor operator <=(Scalar a, Tensor b) => b.ge(a);
        public static Tensor operator >(Scalar a, Tensor b) => b.lt(a);
        public static Tensor operator >=(Scalar a, Tensor b) => b.le(a);
        public static Tensor operator ==(Tensor a, Tensor b) => a.eq(b);
        public static Tensor operator !=(Tensor a, Tensor b) => a.ne(b);
        public static Tensor operator ==(Tensor a, Scalar b) => a.eq(b);
        public static Tensor operator !=(Tensor a, Scalar b) => a.ne(b);

        private Tensor BoolMap(Tensor? other, Func<bool, bool, bool> f, string name)
        {
            var a = _dtype == ScalarType.Bool ? this : ne(0);
            var b = other is null ? a : other._dtype == ScalarType.Bool ? other : other.ne(0);
            var shape = Shapes.Equal(a._shape, b._shape) ? a._shape : Shapes.Broadcast(a._shape, b._shape, name);
            var ea = a.expand(shape); var eb = b.expand(shape);
            var y = Empty(shape, ScalarType.Bool);
            var A = ea.Arr<bool>(); var B = eb.Arr<bool>(); var Y = y.Arr<bool>();
            for (int i = 0; i < y._numel; i++) Y[i] = f(A[i], B[i]);
            return y;
        }

        public Tensor logical_not() => BoolMap(null, (u, _) => !u, "logical_not");
        public Tensor logical_and(Tensor other) => BoolMap(other, (u, v) => u && v, "logical_and");
        public Tensor logical_or(Tensor other) => BoolMap(other, (u, v) => u || v, "logical_or");
        public Tensor logical_xor(Tensor other) => BoolMap(other, (u, v) => u ^ v, "logical_xor");
        public static Tensor operator &(Tensor a, Tensor b) => a.logical_and(b);
        public static Tensor operator |(Tensor a, Tensor b) => a.logical_or(b);
        public static Tensor operator ~(Tensor a) => a.logical_not();

        /// <summary>True where the element is NaN.</summary>
        public Tensor isnan() => IsFloat ? ne(this) : zeros_like(this, ScalarType.Bool);
        /// <summary>True where the element is finite (not NaN, not ±∞).</summary>
        public Tensor isfinite()
        {
            if (!IsFloat) return ones_like(this, ScalarType.Bool);
            var y = Empty(_shape, ScalarType.Bool); var Y = y.Arr<bool>();
            for (int i = 0; i < _numel; i++) Y[i] = double.IsFinite(GetDouble(i));
            return y;
        }
        /// <summary>True if any element is nonzero (a 0-dim bool tensor).</summary>
        public Tensor any() { for (int i = 0; i < _numel; i++) if (GetDouble(i) != 0) return tensor(true); return tensor(false); }
        /// <summary>True if every element is nonzero (a 0-dim bool tensor).</summary>
        public Tensor all() { for (int i = 0; i < _numel; i++) if (GetDouble(i) == 0) return tensor(false); return tensor(true); }
    }

    // ------------------------------------------------------------------ function forms: torch.exp(x), ...
    public static Tensor exp(Tensor input) => input.exp();
    public static Tensor log(Tensor input) => input.log();
    public static Tensor log1p(Tensor input) => input.log1p();
    public static Tensor sqrt(Tensor input) => input.sqrt();
    public static Tensor rsqrt(Tensor input) => input.rsqrt();
    public static Tensor abs(Tensor input) => input.abs();
    public static Tensor neg(Tensor input) => input.neg();
    public static Tensor square(Tensor input) => input.square();
    public static Tensor sigmoid(Tensor input) => input.sigmoid();
    public static Tensor tanh(Tensor input) => input.tanh();
    public static Tensor relu(Tensor input) => input.relu();
    public static Tensor pow(Tensor input, Scalar exponent) => input.pow(exponent);
    public static Tensor pow(Tensor input, Tensor exponent) => input.pow(exponent);
    public static Tensor clamp(Tensor input, Scalar? min = null, Scalar? max = null) => input.clamp(min, max);
    public static Tensor maximum(Tensor input, Tensor other) => input.maximum(other);
    public static Tensor minimum(Tensor input, Tensor other) => input.minimum(other);
    public static Tensor add(Tensor input, Tensor other) => input.add(other);
    public static Tensor sub(Tensor input, Tensor other) => input.sub(other);
    public static Tensor mul(Tensor input, Tensor other) => input.mul(other);
    public static Tensor div(Tensor input, Tensor other) => input.div(other);
    public static Tensor isnan(Tensor input) => input.isnan();
}
