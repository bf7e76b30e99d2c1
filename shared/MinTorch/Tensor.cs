using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace TorchSharp;

public static partial class torch
{
    /// <summary>
    /// An n-dimensional array with reverse-mode automatic differentiation (TorchSharp's <c>torch.Tensor</c>).
    /// </summary>
    /// <remarks>
    /// <para>Storage is one flat, row-major (C-order) array of the dtype's .NET type: <c>float[]</c>,
    /// <c>double[]</c>, <c>long[]</c> or <c>bool[]</c>. Every MinTorch tensor is contiguous: <c>view</c>,
    /// <c>reshape</c>, <c>unsqueeze</c>, <c>squeeze</c>, <c>flatten</c> and <c>detach</c> share the storage
    /// (writes through one show in the other, as in PyTorch), while <c>transpose</c>, <c>permute</c>,
    /// <c>narrow</c> and indexing return copies. That keeps every kernel a loop over a flat span — the
    /// price is a copy where PyTorch would return a strided view, and that a write into a transposed
    /// tensor does not reach its source.</para>
    /// <para>A tensor produced by an op on tensors that require grad remembers that op in
    /// <see cref="grad_fn"/>: the op's name, its inputs, and one function per input that maps the
    /// gradient of the output to the gradient of that input (the chain rule, written next to the
    /// forward in each op's source). <see cref="backward()"/> walks that graph in reverse topological order.</para>
    /// </remarks>
    public partial class Tensor : IDisposable
    {
        private Array _data;
        private Storage? _owner;       // the pool's record of _data, or null when the garbage collector owns it
        private DisposeScope? _scope;  // the dispose scope that will dispose this tensor, if any
        private bool _disposed;
        internal long[] _shape;
        internal int _numel;
        internal ScalarType _dtype;
        private bool _requiresGrad;

        /// <summary>The op that produced this tensor, or null for a leaf.</summary>
        internal Autograd.Node? grad_fn;

        internal Tensor(Array storage, long[] shape, ScalarType dtype)
        {
            _data = storage;
            _shape = shape;
            _numel = checked((int)Shapes.Numel(shape));
            _dtype = dtype;
            if (storage.Length < _numel) throw new ArgumentException("internal: storage smaller than shape");
            Hold(StoragePool.OwnerOf(storage));
        }

        /// <summary>Takes a handle on a pooled storage (views and detached tensors share it) and joins the innermost
        /// dispose scope, which will let go of it; tensors the garbage collector owns need neither.</summary>
        private void Hold(Storage? owner)
        {
            _owner = owner;
            if (owner is null) return;
            Interlocked.Increment(ref owner.Handles);
            DisposeScope.Current?.Add(this);
        }

        /// <summary>Copy constructor for <c>Parameter</c>: shares <paramref name="data"/>'s storage.</summary>
        protected Tensor(Tensor data) : this(data._storage, (long[])data._shape.Clone(), data._dtype) { }

        // ---------------------------------------------------------------- shape and type

        public long[] shape => (long[])_shape.Clone();
        public long[] size() => shape;
        public long size(int dim) => _shape[Shapes.Dim(dim, _shape.Length, "size")];
        public long numel() => _numel;
        public long dim() => _shape.Length;
        public long ndim => _shape.Length;
        public ScalarType dtype => _dtype;
        public Device device => CPU;
        public Device device_type => CPU;
        public bool is_floating_point() => _dtype is ScalarType.Float32 or ScalarType.Float64;

        internal bool IsFloat => _dtype is ScalarType.Float32 or ScalarType.Float64;
        internal int Rank => _shape.Length;
        internal string ShapeString => Shapes.Str(_shape);

        // ---------------------------------------------------------------- storage access (internal)

        /// <summary>The storage array; throws once the tensor was disposed and its memory went back to the
        /// pool.</summary>
        internal Array _storage => _owner is { Released: true } ? throw Freed() : _data;

        private ObjectDisposedException Freed() => new("Tensor",
            $"this tensor (shape {ShapeString}) was disposed and its memory reused: it was made inside a dispose " +
            "scope that has ended, or Dispose() was called on it. Keep it past the scope with " +
            "MoveToOuterDisposeScope() or DetachFromDisposeScope() (as TorchSharp requires too)");

        /// <summary>Points this tensor at <paramref name="source"/>'s storage (converting a parameter in
        /// place).</summary>
        internal void ShareStorage(Tensor source)
        {
            var old = _owner;
            _data = source._storage;
            _owner = StoragePool.OwnerOf(_data);
            if (_owner is not null) Interlocked.Increment(ref _owner.Handles);
            if (old is not null) StoragePool.Release(old);
        }

        internal T[] Arr<T>() => Unsafe.As<T[]>(_storage);
        internal Span<T> Span<T>() => new(Unsafe.As<T[]>(_storage), 0, _numel);
        internal ReadOnlySpan<T> RSpan<T>() => new(Unsafe.As<T[]>(_storage), 0, _numel);

        /// <summary>A fresh tensor of this shape and dtype whose elements are not initialised.</summary>
        /// <remarks>Large float storage comes from the pool (Storage.cs) when a dispose scope is open, which will
        /// give it back; otherwise, or with <paramref name="pooled"/> false (a tensor that outlives every scope, such
        /// as a leaf's <c>.grad</c>), it is a plain array that the garbage collector frees.</remarks>
        internal static Tensor Empty(long[] shape, ScalarType dtype, bool pooled = true)
        {
            int n = checked((int)Shapes.Numel(shape));
            Array storage = (pooled ? StoragePool.Rent(dtype, n) : null) ?? dtype switch
            {
                ScalarType.Float32 => GC.AllocateUninitializedArray<float>(n),
                ScalarType.Float64 => GC.AllocateUninitializedArray<double>(n),
                ScalarType.Int64 => GC.AllocateUninitializedArray<long>(n),
                ScalarType.Bool => new bool[n],
                _ => throw new NotSupportedException($"dtype {dtype} is not supported by MinTorch"),
            };
            return new Tensor(storage, shape, dtype);
        }

        /// <summary>A fresh zero-filled tensor.</summary>
        internal static Tensor Zeros(long[] shape, ScalarType dtype)
        {
            int n = checked((int)Shapes.Numel(shape));
            if (StoragePool.Rent(dtype, n) is Array pooled)
            {
                Array.Clear(pooled);
                return new Tensor(pooled, shape, dtype);
            }
            Array storage = dtype switch
            {
                ScalarType.Float32 => new float[n],
                ScalarType.Float64 => new double[n],
                ScalarType.Int64 => new long[n],
                ScalarType.Bool => new bool[n],
                _ => throw new NotSupportedException($"dtype {dtype} is not supported by MinTorch"),
            };
            return new Tensor(storage, shape, dtype);
        }

        // ---------------------------------------------------------------- autograd state

        /// <summary>Whether gradients flow to this tensor. Only a leaf's flag can be set.</summary>
        public bool requires_grad
        {
            get => _requiresGrad;
            set
            {
                if (grad_fn is not null && !value)
                    throw new InvalidOperationException(
                        "requires_grad: you can only change requires_grad flags of leaf tensors; use detach() to get a tensor without history");
                if (value && !IsFloat)
                    throw new InvalidOperationException(
                        $"requires_grad: only floating-point tensors can require gradients, this one is {_dtype}");
                _requiresGrad = value;
            }
        }

        /// <summary>Sets <see cref="requires_grad"/> in place and returns this tensor.</summary>
        public Tensor requires_grad_(bool requires_grad = true) { this.requires_grad = requires_grad; return this; }

        internal void SetRequiresGradUnchecked(bool value) => _requiresGrad = value;

        /// <summary>The gradient accumulated by <see cref="backward()"/> (leaves only), or null.</summary>
        /// <remarks>A gradient outlives dispose scopes (libtorch's parameter holds it), so setting one takes it out
        /// of its scope.</remarks>
        public Tensor? grad { get => _grad; set => _grad = value?.DetachFromDisposeScope(); }
        private Tensor? _grad;

        /// <summary>True for tensors not produced by a recorded op (inputs, parameters, detached tensors).</summary>
        public bool is_leaf => grad_fn is null;

        /// <summary>The name of the op that produced this tensor (for printing graphs), or null for a leaf.</summary>
        public string? grad_fn_name => grad_fn?.Name;

        /// <summary>Back-propagates from this scalar: accumulates d(this)/d(leaf) into every leaf's <c>.grad</c>.</summary>
        public void backward() => Autograd.Backward(this, null, retain_graph: false, create_graph: false);

        /// <summary>Back-propagates with an explicit gradient of the same shape as this tensor (for non-scalars):
        /// TorchSharp's signature, where <paramref name="grad_tensors"/> holds that one gradient. Unless
        /// <paramref name="retain_graph"/> or <paramref name="create_graph"/> is set, the graph is done with afterwards
        /// (as in PyTorch); <paramref name="inputs"/> must be null.</summary>
        public void backward(IList<Tensor>? grad_tensors, bool create_graph = false, bool retain_graph = false,
            IList<Tensor>? inputs = null)
        {
            if (grad_tensors is { Count: > 1 })
                throw new ArgumentException($"backward: one tensor takes one gradient, got {grad_tensors.Count}");
            if (inputs is not null) throw new NotSupportedException("backward: inputs is not supported by MinTorch");
            Autograd.Backward(this, grad_tensors is { Count: 1 } ? grad_tensors[0] : null,
                retain_graph || create_graph, create_graph);
        }

        /// <summary>A tensor sharing this one's storage, cut out of the autograd graph.</summary>
        public Tensor detach() => new(_storage, _shape, _dtype);

        /// <summary>Cuts this tensor out of the graph in place (it becomes a leaf that does not require grad).</summary>
        public Tensor detach_() { grad_fn = null; _requiresGrad = false; return this; }

        // ---------------------------------------------------------------- copies and in-place writes

        /// <summary>A copy with its own storage. Differentiable: the gradient passes through unchanged.</summary>
        public Tensor clone()
        {
            var y = Empty(_shape, _dtype);
            Array.Copy(_storage, y._storage, _numel);
            return Autograd.Record(y, "clone", this, g => g);
        }

        /// <summary>MinTorch tensors are always contiguous, so this returns the tensor itself.</summary>
        public Tensor contiguous() => this;
        public bool is_contiguous() => true;

        /// <summary>Throws if an in-place write would corrupt the autograd graph (as PyTorch does).</summary>
        internal void CheckInPlace(string op)
        {
            if (is_grad_enabled() && (_requiresGrad || grad_fn is not null))
                throw new InvalidOperationException(
                    $"{op}: a tensor that requires grad cannot be modified in place while grad mode is on; " +
                    "wrap the update in `using (torch.no_grad())` or work on a detached copy");
        }

        /// <summary>Copies <paramref name="src"/> (broadcast and converted to this dtype) into this tensor.</summary>
        public Tensor copy_(Tensor src, bool non_blocking = false)
        {
            CheckInPlace("copy_");
            var s = src;
            if (!Shapes.Equal(s._shape, _shape))
            {
                var b = Shapes.Broadcast(s._shape, _shape, "copy_");
                if (!Shapes.Equal(b, _shape))
                    throw new ArgumentException($"copy_: the source shape {s.ShapeString} cannot be broadcast to the destination shape {ShapeString}");
                s = s.expand(_shape);
            }
            if (s._dtype != _dtype) s = s.to_type(_dtype);
            Array.Copy(s._storage, _storage, _numel);
            return this;
        }

        /// <summary>Sets every element to zero, in place.</summary>
        public Tensor zero_() { CheckInPlace("zero_"); Array.Clear(_storage, 0, _numel); return this; }

        /// <summary>Sets every element to <paramref name="value"/>, in place.</summary>
        public Tensor fill_(Scalar value)
        {
            CheckInPlace("fill_");
            switch (_dtype)
            {
                case ScalarType.Float32: Span<float>().Fill(value.ToSingle()); break;
                case ScalarType.Float64: Span<double>().Fill(value.ToDouble()); break;
                case ScalarType.Int64: Span<long>().Fill(value.ToInt64()); break;
                case ScalarType.Bool: Span<bool>().Fill(value.ToBoolean()); break;
            }
            return this;
        }

        // ---------------------------------------------------------------- dtype and device

        /// <summary>Converts to another dtype (a copy; the same tensor when the dtype already matches).
        /// Differentiable between floating-point dtypes.</summary>
        public Tensor to_type(ScalarType type, bool copy = false)
        {
            if (type == _dtype) return copy ? clone() : this;
            var y = Empty(_shape, type);
            Convert(this, y);
            if (IsFloat && y.IsFloat)
            {
                var from = _dtype;
                return Autograd.Record(y, "to_type", this, g => g.to_type(from));
            }
            return y;
        }

        public Tensor to(ScalarType type, bool copy = false) => to_type(type, copy);

        /// <summary>Moves the tensor to a device. MinTorch computes on the CPU only: CUDA is refused with a clear message.</summary>
        public Tensor to(Device device, bool copy = false)
        {
            if (device.type != DeviceType.CPU) throw torch.cuda.NotAvailable();
            return copy ? clone() : this;
        }

        public Tensor to(ScalarType type, Device device, bool copy = false) => to(device).to_type(type, copy);
        public Tensor cpu() => this;
        public Tensor cuda() => throw torch.cuda.NotAvailable();

        private static void Convert(Tensor x, Tensor y)
        {
            int n = x._numel;
            switch (x._dtype, y._dtype)
            {
                case (ScalarType.Float32, ScalarType.Float64):
                    System.Numerics.Tensors.TensorPrimitives.ConvertChecked<float, double>(x.RSpan<float>(), y.Span<double>()); break;
                case (ScalarType.Float64, ScalarType.Float32):
                    System.Numerics.Tensors.TensorPrimitives.ConvertTruncating<double, float>(x.RSpan<double>(), y.Span<float>()); break;
                default:
                    for (int i = 0; i < n; i++) y.SetDouble(i, x.GetDouble(i), x.GetLong(i)); break;
            }
        }

        /// <summary>Element i as a double (any dtype).</summary>
        internal double GetDouble(int i) => _dtype switch
        {
            ScalarType.Float32 => Arr<float>()[i],
            ScalarType.Float64 => Arr<double>()[i],
            ScalarType.Int64 => Arr<long>()[i],
            _ => Arr<bool>()[i] ? 1.0 : 0.0,
        };

        /// <summary>Element i as a long (floats truncate toward zero, as a C cast).</summary>
        internal long GetLong(int i) => _dtype switch
        {
            ScalarType.Float32 => (long)Arr<float>()[i],
            ScalarType.Float64 => (long)Arr<double>()[i],
            ScalarType.Int64 => Arr<long>()[i],
            _ => Arr<bool>()[i] ? 1 : 0,
        };

        private void SetDouble(int i, double d, long l)
        {
            switch (_dtype)
            {
                case ScalarType.Float32: Arr<float>()[i] = (float)d; break;
                case ScalarType.Float64: Arr<double>()[i] = d; break;
                case ScalarType.Int64: Arr<long>()[i] = l; break;
                default: Arr<bool>()[i] = d != 0; break;
            }
        }

        // ---------------------------------------------------------------- reading values out

        /// <summary>The single element of a one-element tensor. <typeparamref name="T"/> must be the dtype's type.</summary>
        public T item<T>() where T : unmanaged
        {
            if (_numel != 1)
                throw new InvalidOperationException($"item: a tensor with {_numel} elements (shape {ShapeString}) cannot be converted to a scalar");
            CheckElementType<T>("item");
            return Arr<T>()[0];
        }

        /// <summary>An accessor over the elements in row-major order (<c>.ToArray()</c>, indexer, enumeration).</summary>
        public TensorAccessor<T> data<T>() where T : unmanaged
        {
            CheckElementType<T>("data");
            return new TensorAccessor<T>(Arr<T>(), _numel);
        }

        private void CheckElementType<T>(string op)
        {
            var want = _dtype switch
            {
                ScalarType.Float32 => typeof(float),
                ScalarType.Float64 => typeof(double),
                ScalarType.Int64 => typeof(long),
                _ => typeof(bool),
            };
            if (typeof(T) != want)
                throw new InvalidOperationException($"{op}<{typeof(T).Name}>: the tensor's dtype is {_dtype}, read it as {want.Name}");
        }

        public float ToSingle() => (float)ScalarValue("ToSingle");
        public double ToDouble() => ScalarValue("ToDouble");
        public long ToInt64() => _numel == 1 ? GetLong(0) : (long)ScalarValue("ToInt64");
        public bool ToBoolean() => ScalarValue("ToBoolean") != 0;

        private double ScalarValue(string op)
        {
            if (_numel != 1)
                throw new InvalidOperationException($"{op}: a tensor with {_numel} elements (shape {ShapeString}) cannot be converted to a scalar");
            return GetDouble(0);
        }

        /// <summary>TorchSharp's short description: shape, dtype and device.</summary>
        public override string ToString() =>
            $"[{string.Join("x", _shape)}], type = {_dtype}, device = cpu";

        /// <summary>The values, formatted like PyTorch's <c>print(x)</c> (nested brackets).</summary>
        public string str(int maxElementsPerDim = 8)
        {
            var sb = new StringBuilder("tensor(");
            if (Rank == 0) sb.Append(FormatElement(0));
            else Format(sb, 0, 0, maxElementsPerDim);
            if (_dtype != ScalarType.Float32) sb.Append(", dtype=").Append(_dtype);
            if (grad_fn is not null) sb.Append(", grad_fn=").Append(grad_fn.Name);
            else if (_requiresGrad) sb.Append(", requires_grad=True");
            return sb.Append(')').ToString();
        }

        private void Format(StringBuilder sb, int d, int offset, int max)
        {
            long n = _shape[d];
            int stride = 1;
            for (int k = d + 1; k < Rank; k++) stride *= (int)_shape[k];
            sb.Append('[');
            for (long i = 0; i < n; i++)
            {
                if (n > max && i == max / 2) { sb.Append("..., "); i = n - max / 2; }
                if (d == Rank - 1) sb.Append(FormatElement(offset + (int)i));
                else Format(sb, d + 1, offset + (int)i * stride, max);
                if (i < n - 1) sb.Append(d == Rank - 1 ? ", " : ",\n" + new string(' ', 8 + d));
            }
            sb.Append(']');
        }

        private string FormatElement(int i) => _dtype switch
        {
            ScalarType.Float32 => Arr<float>()[i].ToString("0.0000", CultureInfo.InvariantCulture),
            ScalarType.Float64 => Arr<double>()[i].ToString("0.0000", CultureInfo.InvariantCulture),
            ScalarType.Int64 => Arr<long>()[i].ToString(CultureInfo.InvariantCulture),
            _ => Arr<bool>()[i] ? "True" : "False",
        };

        /// <summary>Lets go of this tensor's memory, as in TorchSharp. A large float tensor's storage goes back to
        /// MinTorch's pool once every tensor sharing it is disposed and no recorded op that may need it is waiting
        /// for its backward pass (see <c>Storage.cs</c>); the tensor must not be used after that. Other tensors are
        /// left to the garbage collector. Disposing twice does nothing.</summary>
        public virtual void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            grad = null;
            _scope = null;
            if (_owner is not null) StoragePool.Release(_owner);
            GC.SuppressFinalize(this);
        }

        /// <summary>Keeps this tensor past the innermost dispose scope that holds it: it joins the next scope out, or
        /// no scope when there is none (as in TorchSharp).</summary>
        public Tensor MoveToOuterDisposeScope()
        {
            if (_scope is not null) { _scope = _scope.Outer; _scope?.Add(this); }
            return this;
        }

        /// <summary>Takes this tensor out of every dispose scope: it lives until it is disposed or collected.</summary>
        public Tensor DetachFromDisposeScope() { _scope = null; return this; }

        /// <summary>The scope this tensor joined (set by <see cref="DisposeScope"/>).</summary>
        internal DisposeScope? Scope { get => _scope; set => _scope = value; }
    }

    /// <summary>A read-only view of a tensor's elements (what TorchSharp's <c>data&lt;T&gt;()</c> returns).</summary>
    public readonly struct TensorAccessor<T> : IEnumerable<T> where T : unmanaged
    {
        private readonly T[] _array;
        private readonly int _count;
        internal TensorAccessor(T[] array, int count) { _array = array; _count = count; }
        public long Count => _count;
        public T this[long index] => (ulong)index < (ulong)_count ? _array[index] : throw new IndexOutOfRangeException($"data: index {index} is out of range for {_count} elements");
        public T[] ToArray() => _array.AsSpan(0, _count).ToArray();
        public IEnumerator<T> GetEnumerator() { for (int i = 0; i < _count; i++) yield return _array[i]; }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
