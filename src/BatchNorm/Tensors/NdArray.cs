using System;
using System.Numerics.Tensors;

namespace BatchNorm.Tensors;

/// <summary>
/// A lightweight dense n-dimensional array: an <see cref="NdShape"/> plus a contiguous row-major (C order)
/// buffer of exactly <see cref="NdShape.Length"/> elements. Element <c>[i0, i1, ..., ik]</c> lives at flat
/// index <c>((i0 * d1 + i1) * d2 + ...) * dk + ik</c>.
/// </summary>
/// <typeparam name="T">The element type; the layer computes with <see cref="float"/> and <see cref="double"/>.</typeparam>
/// <remarks>
/// <para>
/// Conversions to <c>System.Numerics.Tensors</c> are zero-copy: <see cref="ToTensor"/>,
/// <see cref="AsTensorSpan"/> and <see cref="AsReadOnlyTensorSpan"/> all view the same array. The other direction
/// needs no conversion at all: <see cref="BatchNormalization{T}"/> accepts any dense
/// <see cref="ReadOnlyTensorSpan{T}"/> and <see cref="TensorSpan{T}"/> (a <see cref="Tensor{T}"/> converts to
/// both implicitly), so a <see cref="Tensor{T}"/> is normalized in place of its own memory.
/// <see cref="FromTensor(in ReadOnlyTensorSpan{T})"/> copies, because <see cref="Tensor{T}"/> does not expose its storage.
/// </para>
/// <para>The type is named <c>NdArray</c> so that it does not collide with <c>System.Numerics.Tensors.Tensor</c>.</para>
/// </remarks>
public sealed class NdArray<T>
    where T : unmanaged
{
    private readonly T[] _data;

    /// <summary>Creates a zero-filled array of the given shape.</summary>
    public NdArray(NdShape shape)
    {
        Shape = shape;
        _data = shape.Length == 0 ? [] : new T[shape.Length];
    }

    /// <summary>Wraps <paramref name="data"/> as an array of the given shape, without copying it.</summary>
    /// <param name="data">The row-major elements; its length must equal the shape's element count. Later writes to
    /// the array are visible through this instance and the other way round.</param>
    /// <param name="shape">The shape.</param>
    /// <exception cref="ArgumentNullException"><paramref name="data"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="data"/>'s length is not the shape's element count.</exception>
    public NdArray(T[] data, NdShape shape)
    {
        if (data is null)
        {
            ThrowHelper.ThrowArgumentNull(nameof(data));
        }

        if (data.Length != shape.Length)
        {
            ThrowHelper.ThrowArgument(nameof(data), $"Expected {shape.Length} elements for shape {shape}, got {data.Length}.");
        }

        _data = data;
        Shape = shape;
    }

    /// <summary>Creates an array of the given shape holding a copy of <paramref name="data"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="data"/>'s length is not the shape's element count.</exception>
    public static NdArray<T> FromSpan(ReadOnlySpan<T> data, NdShape shape)
    {
        if (data.Length != shape.Length)
        {
            ThrowHelper.ThrowArgument(nameof(data), $"Expected {shape.Length} elements for shape {shape}, got {data.Length}.");
        }

        return new NdArray<T>(data.ToArray(), shape);
    }

    /// <summary>Creates an array holding a copy of a (possibly strided) tensor span's elements, in row-major order.</summary>
    public static NdArray<T> FromTensor(in ReadOnlyTensorSpan<T> tensor)
    {
        var dims = new int[tensor.Rank];
        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = checked((int)tensor.Lengths[i]);
        }

        var result = new NdArray<T>(new NdShape(dims));
        tensor.FlattenTo(result._data);
        return result;
    }

    /// <summary>The shape.</summary>
    public NdShape Shape { get; }

    /// <summary>The number of dimensions.</summary>
    public int Rank => Shape.Rank;

    /// <summary>The number of elements.</summary>
    public int Length => _data.Length;

    /// <summary>The elements in row-major order; writes go to this array's storage.</summary>
    public Span<T> Span => _data;

    /// <summary>The elements in row-major order, read-only.</summary>
    public ReadOnlySpan<T> ReadOnlySpan => _data;

    /// <summary>The element at the given indices (one per dimension, each in [0, length)).</summary>
    /// <exception cref="ArgumentException">The number of indices is not <see cref="Rank"/>.</exception>
    /// <exception cref="IndexOutOfRangeException">An index is out of range.</exception>
    public ref T this[params ReadOnlySpan<int> indices]
    {
        get
        {
            ReadOnlySpan<int> dims = Shape.Dimensions;
            if (indices.Length != dims.Length)
            {
                ThrowHelper.ThrowArgument(nameof(indices), $"Expected {dims.Length} indices for shape {Shape}, got {indices.Length}.");
            }

            int flat = 0;
            for (int i = 0; i < dims.Length; i++)
            {
                if ((uint)indices[i] >= (uint)dims[i])
                {
                    throw new IndexOutOfRangeException($"Index {indices[i]} is out of range for dimension {i} of shape {Shape}.");
                }

                flat = (flat * dims[i]) + indices[i];
            }

            return ref _data[flat];
        }
    }

    /// <summary>Returns the underlying array itself (not a copy); it has exactly <see cref="Length"/> elements.</summary>
    public T[] GetUnderlyingArray() => _data;

    /// <summary>Returns a copy of the elements in row-major order.</summary>
    public T[] ToArray() => (T[])_data.Clone();

    /// <summary>Returns a view of the same storage with another shape of the same element count.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    public NdArray<T> Reshape(NdShape shape) => new(_data, shape);

    /// <summary>Returns a deep copy.</summary>
    public NdArray<T> Clone() => new(ToArray(), Shape);

    /// <summary>Wraps the same storage as a <see cref="Tensor{T}"/>, without copying.</summary>
    public Tensor<T> ToTensor() => Tensor.Create(_data, Shape.ToNativeLengths());

    /// <summary>Views the same storage as a <see cref="TensorSpan{T}"/>, without copying.</summary>
    public TensorSpan<T> AsTensorSpan() => new(_data, Shape.ToNativeLengths());

    /// <summary>Views the same storage as a <see cref="ReadOnlyTensorSpan{T}"/>, without copying.</summary>
    public ReadOnlyTensorSpan<T> AsReadOnlyTensorSpan() => new(_data, Shape.ToNativeLengths());

    /// <summary>Views an array as a <see cref="TensorSpan{T}"/>, without copying.</summary>
    public static implicit operator TensorSpan<T>(NdArray<T> array) => array is null ? default : array.AsTensorSpan();

    /// <summary>Views an array as a <see cref="ReadOnlyTensorSpan{T}"/>, without copying.</summary>
    public static implicit operator ReadOnlyTensorSpan<T>(NdArray<T> array) => array is null ? default : array.AsReadOnlyTensorSpan();

    /// <summary>Formats the shape and element type, e.g. <c>NdArray&lt;Single&gt;[2, 3]</c>.</summary>
    public override string ToString() => $"NdArray<{typeof(T).Name}>{Shape}";
}
