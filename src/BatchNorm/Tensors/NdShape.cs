using System;
using System.Text;

namespace BatchNorm.Tensors;

/// <summary>
/// The immutable shape of a dense, row-major (C order) n-dimensional array: one non-negative length per
/// dimension, outermost first. The last dimension is contiguous in memory.
/// </summary>
/// <remarks>
/// The type is named <c>NdShape</c> so that it does not collide with any type of
/// <c>System.Numerics.Tensors</c> when both namespaces are imported.
/// </remarks>
public readonly struct NdShape : IEquatable<NdShape>
{
    private readonly int[]? _dimensions;
    private readonly int _length;

    /// <summary>Creates a shape from its dimension lengths, outermost first.</summary>
    /// <param name="dimensions">The length of each dimension; each must be &gt;= 0 and their product must fit in an <see cref="int"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A length is negative, or the element count overflows <see cref="int"/>.</exception>
    public NdShape(params ReadOnlySpan<int> dimensions)
    {
        _length = CheckedLength(dimensions, nameof(dimensions));
        _dimensions = dimensions.ToArray();
    }

    /// <summary>The number of dimensions (0 for a scalar shape).</summary>
    public int Rank => _dimensions?.Length ?? 0;

    /// <summary>The number of elements: the product of all dimension lengths (1 for a rank-0 shape, including <c>default</c>).</summary>
    public int Length => _dimensions is null ? 1 : _length;

    /// <summary>The dimension lengths, outermost first.</summary>
    public ReadOnlySpan<int> Dimensions => _dimensions;

    /// <summary>The length of dimension <paramref name="dimension"/>; negative values count from the end (-1 is the last).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is not in [-Rank, Rank).</exception>
    public int this[int dimension]
    {
        get
        {
            int rank = Rank;
            if (dimension < -rank || dimension >= rank)
            {
                ThrowHelper.ThrowArgumentOutOfRange(nameof(dimension), dimension, $"Expected a dimension in [{-rank}, {rank}).");
            }

            return _dimensions![dimension < 0 ? dimension + rank : dimension];
        }
    }

    /// <summary>Returns a copy of the dimension lengths.</summary>
    public int[] ToArray() => _dimensions is null ? [] : (int[])_dimensions.Clone();

    /// <summary>Returns the dimension lengths as the native-sized integers used by <c>System.Numerics.Tensors</c>.</summary>
    public nint[] ToNativeLengths()
    {
        var lengths = new nint[Rank];
        for (int i = 0; i < lengths.Length; i++)
        {
            lengths[i] = _dimensions![i];
        }

        return lengths;
    }

    /// <inheritdoc/>
    public bool Equals(NdShape other) => Dimensions.SequenceEqual(other.Dimensions);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is NdShape other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in Dimensions)
        {
            hash.Add(d);
        }

        return hash.ToHashCode();
    }

    /// <summary>Formats the shape as <c>[d0, d1, ...]</c>, the way Keras prints shapes.</summary>
    public override string ToString() => Format(Dimensions);

    /// <summary>Returns whether two shapes have the same dimension lengths.</summary>
    public static bool operator ==(NdShape left, NdShape right) => left.Equals(right);

    /// <summary>Returns whether two shapes differ in rank or in any dimension length.</summary>
    public static bool operator !=(NdShape left, NdShape right) => !left.Equals(right);

    /// <summary>Creates a shape from an array of dimension lengths (the array is copied).</summary>
    public static implicit operator NdShape(int[] dimensions) => new(dimensions);

    internal static string Format(ReadOnlySpan<int> dimensions)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < dimensions.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append(dimensions[i]);
        }

        return sb.Append(']').ToString();
    }

    internal static int CheckedLength(ReadOnlySpan<int> dimensions, string paramName)
    {
        long length = 1;
        foreach (int d in dimensions)
        {
            if (d < 0)
            {
                ThrowHelper.ThrowArgumentOutOfRange(paramName, Format(dimensions), "Expected every dimension length to be >= 0.");
            }

            length *= d;
            if (length > Array.MaxLength)
            {
                ThrowHelper.ThrowArgumentOutOfRange(paramName, Format(dimensions), $"Expected at most {Array.MaxLength} elements in all.");
            }
        }

        return (int)length;
    }
}
