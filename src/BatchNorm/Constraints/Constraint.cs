using System;
using System.Collections.Generic;
using System.Numerics;

namespace BatchNorm.Constraints;

/// <summary>
/// A projection applied to a weight after each optimizer step, as a Keras constraint (<c>keras.constraints</c>).
/// The layer applies its constraints in <see cref="BatchNormalization{T}.ApplyConstraints"/>.
/// BatchNormalization's weights are vectors of shape (C,), so the norm constraints take the norm of the whole
/// vector (Keras <c>axis=0</c>). A string converts implicitly through <see cref="Get(string)"/>.
/// </summary>
public abstract class Constraint
{
    /// <summary>Keras' <c>backend.epsilon()</c>, added to norms before dividing by them.</summary>
    public const double NormEpsilon = 1e-7;

    /// <summary>The Keras class name, e.g. <c>"MaxNorm"</c>.</summary>
    public abstract string ClassName { get; }

    /// <summary>Projects <paramref name="weights"/> in place, computing in double precision.</summary>
    public abstract void Apply<T>(Span<T> weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>;

    /// <summary>The Keras <c>get_config()</c> entries.</summary>
    public virtual IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?>();

    /// <summary>
    /// Resolves a Keras constraint name with Keras defaults: <c>"non_neg"</c>, <c>"max_norm"</c>, <c>"min_max_norm"</c>,
    /// <c>"unit_norm"</c>, or the class names (<c>"NonNeg"</c>, <c>"MaxNorm"</c>, ...).
    /// </summary>
    /// <exception cref="ArgumentException">The name is not one of those.</exception>
    public static Constraint Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return KerasNames.Normalize(name) switch
        {
            "nonneg" => new NonNeg(),
            "maxnorm" => new MaxNorm(),
            "minmaxnorm" => new MinMaxNorm(),
            "unitnorm" => new UnitNorm(),
            _ => throw new ArgumentException($"Unknown constraint '{name}'. Expected one of: non_neg, max_norm, min_max_norm, unit_norm.", nameof(name)),
        };
    }

    /// <summary>Resolves a Keras constraint name; see <see cref="Get(string)"/>.</summary>
    public static implicit operator Constraint(string name) => Get(name);

    /// <summary>Formats the Keras class name and configuration.</summary>
    public override string ToString() => KerasNames.Describe(ClassName, GetConfig());

    /// <summary>The Euclidean norm of the whole vector, in double precision.</summary>
    private protected static double Norm<T>(ReadOnlySpan<T> weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double sum = 0;
        foreach (T w in weights)
        {
            double v = double.CreateTruncating(w);
            sum += v * v;
        }

        return Math.Sqrt(sum);
    }

    private protected static void Multiply<T>(Span<T> weights, double factor)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int i = 0; i < weights.Length; i++)
        {
            weights[i] = T.CreateTruncating(double.CreateTruncating(weights[i]) * factor);
        }
    }

    /// <summary>Keras accepts the norm axis of a vector weight: 0, or -1 counting from the end.</summary>
    private protected static int CheckAxis(int axis)
    {
        if (axis is not (0 or -1))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(axis), axis, "Expected 0 or -1: BatchNormalization weights have shape (C,).");
        }

        return axis;
    }

    private protected static double CheckFinite(double value, string paramName, double min)
    {
        if (!double.IsFinite(value) || value < min)
        {
            ThrowHelper.ThrowArgumentOutOfRange(paramName, value, $"Expected a finite value >= {min}.");
        }

        return value;
    }
}

/// <summary>Keras <c>NonNeg()</c>: <c>w = max(w, 0)</c>.</summary>
public sealed class NonNeg : Constraint
{
    /// <inheritdoc/>
    public override string ClassName => "NonNeg";

    /// <inheritdoc/>
    public override void Apply<T>(Span<T> weights)
    {
        for (int i = 0; i < weights.Length; i++)
        {
            weights[i] = T.Max(weights[i], T.Zero);
        }
    }
}

/// <summary>
/// Keras <c>MaxNorm(max_value=2, axis=0)</c>: <c>w = w * clip(norm, 0, max_value) / (epsilon + norm)</c>, with
/// <c>norm = sqrt(sum(w^2))</c> and epsilon = 1e-7.
/// </summary>
public sealed class MaxNorm : Constraint
{
    /// <summary>Creates the constraint.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxValue"/> is negative or not finite, or <paramref name="axis"/> is not 0 or -1.</exception>
    public MaxNorm(double maxValue = 2.0, int axis = 0)
    {
        MaxValue = CheckFinite(maxValue, nameof(maxValue), 0);
        Axis = CheckAxis(axis);
    }

    /// <summary>The largest norm allowed (Keras <c>max_value</c>).</summary>
    public double MaxValue { get; }

    /// <summary>The norm axis (Keras <c>axis</c>).</summary>
    public int Axis { get; }

    /// <inheritdoc/>
    public override string ClassName => "MaxNorm";

    /// <inheritdoc/>
    public override void Apply<T>(Span<T> weights)
    {
        double norm = Norm<T>(weights);
        Multiply(weights, Math.Clamp(norm, 0, MaxValue) / (NormEpsilon + norm));
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() =>
        new Dictionary<string, object?> { ["max_value"] = MaxValue, ["axis"] = Axis };
}

/// <summary>
/// Keras <c>MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)</c>:
/// <c>desired = rate * clip(norm, min_value, max_value) + (1 - rate) * norm</c>, <c>w = w * desired / (epsilon + norm)</c>.
/// </summary>
public sealed class MinMaxNorm : Constraint
{
    /// <summary>Creates the constraint.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A bound is negative or not finite, <paramref name="maxValue"/> &lt; <paramref name="minValue"/>, <paramref name="rate"/> is outside [0, 1], or <paramref name="axis"/> is not 0 or -1.</exception>
    public MinMaxNorm(double minValue = 0.0, double maxValue = 1.0, double rate = 1.0, int axis = 0)
    {
        MinValue = CheckFinite(minValue, nameof(minValue), 0);
        MaxValue = CheckFinite(maxValue, nameof(maxValue), minValue);
        if (!(rate >= 0 && rate <= 1))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(rate), rate, "Expected 0 <= rate <= 1.");
        }

        Rate = rate;
        Axis = CheckAxis(axis);
    }

    /// <summary>The smallest norm (Keras <c>min_value</c>).</summary>
    public double MinValue { get; }

    /// <summary>The largest norm (Keras <c>max_value</c>).</summary>
    public double MaxValue { get; }

    /// <summary>How strictly the bounds are enforced per application (Keras <c>rate</c>; 1 is strict).</summary>
    public double Rate { get; }

    /// <summary>The norm axis (Keras <c>axis</c>).</summary>
    public int Axis { get; }

    /// <inheritdoc/>
    public override string ClassName => "MinMaxNorm";

    /// <inheritdoc/>
    public override void Apply<T>(Span<T> weights)
    {
        double norm = Norm<T>(weights);
        double desired = (Rate * Math.Clamp(norm, MinValue, MaxValue)) + ((1 - Rate) * norm);
        Multiply(weights, desired / (NormEpsilon + norm));
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() =>
        new Dictionary<string, object?> { ["min_value"] = MinValue, ["max_value"] = MaxValue, ["rate"] = Rate, ["axis"] = Axis };
}

/// <summary>Keras <c>UnitNorm(axis=0)</c>: <c>w = w / (epsilon + norm)</c>.</summary>
public sealed class UnitNorm : Constraint
{
    /// <summary>Creates the constraint.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="axis"/> is not 0 or -1.</exception>
    public UnitNorm(int axis = 0) => Axis = CheckAxis(axis);

    /// <summary>The norm axis (Keras <c>axis</c>).</summary>
    public int Axis { get; }

    /// <inheritdoc/>
    public override string ClassName => "UnitNorm";

    /// <inheritdoc/>
    public override void Apply<T>(Span<T> weights) => Multiply(weights, 1.0 / (NormEpsilon + Norm<T>(weights)));

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?> { ["axis"] = Axis };
}
