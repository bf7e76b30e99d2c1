using System.Numerics;
using System.Numerics.Tensors;
using static TorchSharp.Elementwise;

namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Type promotion (PyTorch's rules, for the four dtypes MinTorch has):
        //   bool < int64 < float32 < float64, and a 0-dim tensor does not promote a dimensioned
        //   tensor of the same category (float32_matrix * float64_scalar_tensor stays float32).
        // =====================================================================================
        internal static ScalarType Promote(Tensor a, Tensor b)
        {
            if (a._dtype == b._dtype) return a._dtype;
            static int Cat(ScalarType t) => t switch { ScalarType.Bool => 0, ScalarType.Int64 => 1, _ => 2 };
            if (a.Rank == 0 && b.Rank > 0 && Cat(a._dtype) <= Cat(b._dtype)) return b._dtype;
            if (b.Rank == 0 && a.Rank > 0 && Cat(b._dtype) <= Cat(a._dtype)) return a._dtype;
            return Math.Max(Rank(a._dtype), Rank(b._dtype)) switch { 0 => ScalarType.Bool, 1 => ScalarType.Int64, 2 => ScalarType.Float32, _ => ScalarType.Float64 };
            static int Rank(ScalarType t) => t switch { ScalarType.Bool => 0, ScalarType.Int64 => 1, ScalarType.Float32 => 2, _ => 3 };
        }

        /// <summary>A tensor combined with a Python-style number keeps its dtype, unless the number is a
        /// float and the tensor is integral (then float32), or the tensor is bool and the number an integer (int64).</summary>
        internal static ScalarType Promote(Tensor a, Scalar s)
        {
            if (s.IsFloatingPoint && !a.IsFloat) return ScalarType.Float32;
            if (s.Type == ScalarType.Int64 && a._dtype == ScalarType.Bool) return ScalarType.Int64;
            return a._dtype;
        }

        internal static Tensor ScalarTensor(Scalar s, ScalarType dtype) => dtype switch
        {
            ScalarType.Float32 => new Tensor(new[] { s.ToSingle() }, [], dtype),
            ScalarType.Float64 => new Tensor(new[] { s.ToDouble() }, [], dtype),
            ScalarType.Int64 => new Tensor(new[] { s.ToInt64() }, [], dtype),
            _ => new Tensor(new[] { s.ToBoolean() }, [], dtype),
        };

        internal enum BinOp { Add, Sub, Mul, Div, Max, Min, Pow }

        /// <summary>Forward only: y = op(a, b) broadcast, in dtype <paramref name="type"/>.</summary>
        internal static Tensor BinaryForward(Tensor a, Tensor b, BinOp op, string name, ScalarType type)
        {
            var shape = Shapes.Equal(a._shape, b._shape) ? a._shape : Shapes.Broadcast(a._shape, b._shape, name);
            if (a._dtype != type) a = a.detach().to_type(type);
            if (b._dtype != type) b = b.detach().to_type(type);
            var y = Empty(shape, type);
            switch (type)
            {
                case ScalarType.Float32: Dispatch<float>(a, b, y, op); break;
                case ScalarType.Float64: Dispatch<double>(a, b, y, op); break;
                case ScalarType.Int64:
                    if (op == BinOp.Pow) throw new ArgumentException($"{name}: integer powers of int64 tensors are not supported; convert to float first");
                    DispatchInt(a, b, y, op); break;
                default: throw new ArgumentException($"{name}: arithmetic on {type} tensors is not supported (convert with .to_type(torch.float32))");
            }
            return y;
        }

        private static void Dispatch<T>(Tensor a, Tensor b, Tensor y, BinOp op) where T : IFloatingPointIeee754<T>
        {
            switch (op)
            {
                case BinOp.Add: Run<T, Add<T>>(a, b, y); break;
                case BinOp.Sub: Run<T, Sub<T>>(a, b, y); break;
                case BinOp.Mul: Run<T, Mul<T>>(a, b, y); break;
                case BinOp.Div: Run<T, Div<T>>(a, b, y); break;
                case BinOp.Max: Run<T, Max<T>>(a, b, y); break;
                case BinOp.Min: Run<T, Min<T>>(a, b, y); break;
                case BinOp.Pow: Run<T, Pow<T>>(a, b, y); break;
            }
        }

        private static void DispatchInt(Tensor a, Tensor b, Tensor y, BinOp op)
        {
            switch (op)
            {
                case BinOp.Add: Run<long, Add<long>>(a, b, y); break;
                case BinOp.Sub: Run<long, Sub<long>>(a, b, y); break;
                case BinOp.Mul: Run<long, Mul<long>>(a, b, y); break;
                case BinOp.Div: Run<long, Div<long>>(a, b, y); break;
                case BinOp.Max: Run<long, Max<long>>(a, b, y); break;
                case BinOp.Min: Run<long, Min<long>>(a, b, y); break;
            }
        }

        // =====================================================================================
        // The four arithmetic ops. For y = a ∘ b with broadcasting, each backward computes the
        // elementwise derivative and then sums it over the broadcast dimensions (sum_to), because an
        // input that was repeated along a dimension receives the sum of the gradients of its copies.
        // =====================================================================================

        /// <summary>y = a + b.   ∂y/∂a = 1, ∂y/∂b = 1.</summary>
        public Tensor add(Tensor other)
        {
            var y = BinaryForward(this, other, BinOp.Add, "add", Promote(this, other));
            var a = this; var b = other;
            return Autograd.Record(y, "add", a, b, g => g.sum_to(a), g => g.sum_to(b));
        }

        /// <summary>y = a + α·b.</summary>
        public Tensor add(Tensor other, Scalar alpha) => alpha.ToDouble() == 1 ? add(other) : add(other.mul(alpha));

        /// <summary>y = a − b.   ∂y/∂a = 1, ∂y/∂b = −1.</summary>
        public Tensor sub(Tensor other)
        {
            var y = BinaryForward(this, other, BinOp.Sub, "sub", Promote(this, other));
            var a = this; var b = other;
            return Autograd.Record(y, "sub", a, b, g => g.sum_to(a), g => g.neg().sum_to(b));
        }

        /// <summary>y = a · b.   ∂y/∂a = b, ∂y/∂b = a.</summary>
        public Tensor mul(Tensor other)
        {
            var y = BinaryForward(this, other, BinOp.Mul, "mul", Promote(this, other));
            var a = this; var b = other;
            return Autograd.Record(y, "mul", a, b, g => g.mul(b).sum_to(a), g => g.mul(a).sum_to(b));
        }

        /// <summary>y = a / b (true division: int64 / int64 gives float32).   ∂y/∂a = 1/b, ∂y/∂b = −a/b² = −y/b.</summary>
        public Tensor div(Tensor other)
        {
            var type = Promote(this, other);
            if (type is ScalarType.Int64 or ScalarType.Bool) type = ScalarType.Float32;
            var y = BinaryForward(this, other, BinOp.Div, "div", type);
            var a = this; var b = other;
            return Autograd.Record(y, "div", a, b, g => g.div(b).sum_to(a), g => g.mul(y).div(b).neg().sum_to(b));
        }

        /// <summary>y = max(a, b) elementwise. The gradient goes to the larger input (split evenly on ties, as PyTorch does).</summary>
        public Tensor maximum(Tensor other) => MinMax(other, BinOp.Max, "maximum");

        /// <summary>y = min(a, b) elementwise. The gradient goes to the smaller input (split evenly on ties).</summary>
        public Tensor minimum(Tensor other) => MinMax(other, BinOp.Min, "minimum");

        private Tensor MinMax(Tensor other, BinOp op, string name)
        {
            var y = BinaryForward(this, other, op, name, Promote(this, other));
            var a = this; var b = other;
            Tensor Share(Tensor winnerMask, Tensor tieMask) => winnerMask.to_type(y._dtype).add(tieMask.to_type(y._dtype).mul(0.5));
            return Autograd.Record(y, name, a, b,
                g => g.mul(Share(op == BinOp.Max ? a.gt(b) : a.lt(b), a.eq(b))).sum_to(a),
                g => g.mul(Share(op == BinOp.Max ? b.gt(a) : b.lt(a), a.eq(b))).sum_to(b));
        }

        /// <summary>y = aᵇ.   ∂y/∂a = b·aᵇ⁻¹, ∂y/∂b = aᵇ·ln a.</summary>
        public Tensor pow(Tensor exponent)
        {
            var type = Promote(this, exponent);
            if (type is ScalarType.Int64 or ScalarType.Bool) type = ScalarType.Float32;
            var y = BinaryForward(this, exponent, BinOp.Pow, "pow", type);
            var a = this; var b = exponent;
            return Autograd.Record(y, "pow", a, b,
                g => g.mul(b).mul(a.pow(b.sub(1))).sum_to(a),
                g => g.mul(y).mul(a.log()).sum_to(b));
        }

        // ----- tensor ∘ number: no broadcasting and no second input to differentiate

        private Tensor ScalarOp(Scalar s, BinOp op, string name, bool scalarFirst)
        {
            var type = Promote(this, s);
            if (op is BinOp.Div or BinOp.Pow && type is ScalarType.Int64 or ScalarType.Bool) type = ScalarType.Float32;
            var st = ScalarTensor(s, type);
            return scalarFirst ? BinaryForward(st, this, op, name, type) : BinaryForward(this, st, op, name, type);
        }

        public Tensor add(Scalar other) { var y = ScalarOp(other, BinOp.Add, "add", false); return Autograd.Record(y, "add", this, g => g); }
        public Tensor add(Scalar other, Scalar alpha) => add(other.ToDouble() * alpha.ToDouble());
        public Tensor sub(Scalar other) { var y = ScalarOp(other, BinOp.Sub, "sub", false); return Autograd.Record(y, "sub", this, g => g); }
        /// <summary>y = s − x.</summary>
        internal Tensor rsub(Scalar other) { var y = ScalarOp(other, BinOp.Sub, "rsub", true); return Autograd.Record(y, "rsub", this, g => g.neg()); }
        public Tensor mul(Scalar other) { var y = ScalarOp(other, BinOp.Mul, "mul", false); return Autograd.Record(y, "mul", this, g => g.mul(other)); }
        public Tensor div(Scalar other) { var y = ScalarOp(other, BinOp.Div, "div", false); return Autograd.Record(y, "div", this, g => g.div(other)); }
        /// <summary>y = s / x.   ∂y/∂x = −s/x² = −y/x.</summary>
        internal Tensor rdiv(Scalar other)
        {
            var y = ScalarOp(other, BinOp.Div, "rdiv", true);
            var x = this;
            return Autograd.Record(y, "rdiv", x, g => g.mul(y).div(x).neg());
        }

        /// <summary>y = xᵖ.   ∂y/∂x = p·xᵖ⁻¹.</summary>
        public Tensor pow(Scalar exponent)
        {
            var y = ScalarOp(exponent, BinOp.Pow, "pow", false);
            var x = this;
            double p = exponent.ToDouble();
            return Autograd.Record(y, "pow", x, g => p == 2 ? g.mul(x).mul(2.0) : p == 1 ? g : g.mul(x.pow(p - 1)).mul(p));
        }

        /// <summary>y = x².   ∂y/∂x = 2x.</summary>
        public Tensor square() => pow(2);

        public Tensor maximum(Scalar other) => maximum(ScalarTensor(other, Promote(this, other)));
        public Tensor minimum(Scalar other) => minimum(ScalarTensor(other, Promote(this, other)));

        // ----- in place (for optimizers and bookkeeping under no_grad; refused on graph tensors)

        private Tensor InPlace(string op, Func<Tensor> compute)
        {
            CheckInPlace(op);
            Tensor result;
            using (no_grad()) result = compute();
            if (!Shapes.Equal(result._shape, _shape))
                throw new ArgumentException($"{op}: the result shape {result.ShapeString} does not match the tensor's shape {ShapeString} (in-place ops cannot broadcast the destination)");
            if (result._dtype != _dtype) result = result.to_type(_dtype);
            Array.Copy(result._storage, _storage, _numel);
            return this;
        }

        public Tensor add_(Tensor other) => InPlace("add_", () => add(other));
        public Tensor add_(Tensor other, Scalar alpha) => InPlace("add_", () => add(other, alpha));
        public Tensor add_(Scalar other) => InPlace("add_", () => add(other));
        public Tensor sub_(Tensor other) => InPlace("sub_", () => sub(other));
        public Tensor sub_(Scalar other) => InPlace("sub_", () => sub(other));
        public Tensor mul_(Tensor other) => InPlace("mul_", () => mul(other));
        public Tensor mul_(Scalar other) => InPlace("mul_", () => mul(other));
        public Tensor div_(Tensor other) => InPlace("div_", () => div(other));
        public Tensor div_(Scalar other) => InPlace("div_", () => div(other));
        public Tensor clamp_(Scalar? min = null, Scalar? max = null) => InPlace("clamp_", () => clamp(min, max));
        public Tensor pow_(Scalar exponent) => InPlace("pow_", () => pow(exponent));
        public Tensor sqrt_() => InPlace("sqrt_", () => sqrt());
        public Tensor neg_() => InPlace("neg_", () => neg());
        public Tensor exp_() => InPlace("exp_", () => exp());

        // ----- operators (TorchSharp's: arithmetic on either side, comparisons returning bool tensors)

        public static Tensor operator +(Tensor a, Tensor b) => a.add(b);
        public static Tensor operator +(Tensor a, Scalar b) => a.add(b);
        public static Tensor operator +(Scalar a, Tensor b) => b.add(a);
        public static Tensor operator -(Tensor a, Tensor b) => a.sub(b);
        public static Tensor operator -(Tensor a, Scalar b) => a.sub(b);
        public static Tensor operator -(Scalar a, Tensor b) => b.rsub(a);
        public static Tensor operator *(Tensor a, Tensor b) => a.mul(b);
        public static Tensor operator *(Tensor a, Scalar b) => a.mul(b);
        public static Tensor operator *(Scalar a, Tensor b) => b.mul(a);
        public static Tensor operator /(Tensor a, Tensor b) => a.div(b);
        public static Tensor operator /(Tensor a, Scalar b) => a.div(b);
        public static Tensor operator /(Scalar a, Tensor b) => b.rdiv(a);
        public static Tensor operator -(Tensor a) => a.neg();

        // =====================================================================================
        // Broadcasting's adjoint: sum a gradient of the broadcast shape back down to an input's shape.
        // =====================================================================================

        /// <summary>Sums this tensor over the dimensions along which <paramref name="target"/> was broadcast.</summary>
        internal Tensor sum_to(Tensor target) => Shapes.Equal(_shape, target._shape) ? this : sum_to(target._shape);

        internal Tensor sum_to(long[] shape)
        {
            if (Shapes.Equal(_shape, shape)) return this;
            int lead = Rank - shape.Length;
            var dims = new List<long>();
            for (int i = 0; i < Rank; i++)
                if (i < lead || (shape[i - lead] == 1 && _shape[i] != 1)) dims.Add(i);
            var s = dims.Count == 0 ? this : sum(dims.ToArray(), keepdim: true);
            return s.reshape(shape);
        }
    }
}
