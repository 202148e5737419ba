using System;

namespace BatchNorm;

/// <summary>
/// Keras <c>renorm_clipping</c>: optional bounds for the Batch Renormalization correction <c>(r, d)</c>, applied as
/// <c>r = clip(r, rmin, rmax)</c> and <c>d = clip(d, -dmax, dmax)</c>. A missing bound does not clip (Keras documents
/// the defaults as rmax = inf, rmin = 0, dmax = inf, which is the same thing since r &gt; 0).
/// </summary>
public sealed record RenormClipping
{
    /// <summary>Creates the bounds.</summary>
    /// <param name="rmax">Keras <c>rmax</c>, the largest r, or null.</param>
    /// <param name="rmin">Keras <c>rmin</c>, the smallest r, or null.</param>
    /// <param name="dmax">Keras <c>dmax</c>, the largest |d| (&gt;= 0), or null.</param>
    /// <exception cref="ArgumentOutOfRangeException">A bound is NaN, <paramref name="rmax"/> &lt; <paramref name="rmin"/>,
    /// or <paramref name="dmax"/> &lt; 0.</exception>
    public RenormClipping(double? rmax = null, double? rmin = null, double? dmax = null)
    {
        if (rmax is double a && double.IsNaN(a))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(rmax), rmax, "Expected a number, not NaN.");
        }

        if (rmin is double b && double.IsNaN(b))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(rmin), rmin, "Expected a number, not NaN.");
        }

        if (rmax is double hi && rmin is double lo && hi < lo)
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(rmax), rmax, $"Expected rmax >= rmin ({lo}).");
        }

        if (dmax is double d && !(d >= 0))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(dmax), dmax, "Expected dmax >= 0.");
        }

        Rmax = rmax;
        Rmin = rmin;
        Dmax = dmax;
    }

    /// <summary>Keras <c>rmax</c>, or null.</summary>
    public double? Rmax { get; }

    /// <summary>Keras <c>rmin</c>, or null.</summary>
    public double? Rmin { get; }

    /// <summary>Keras <c>dmax</c>, or null.</summary>
    public double? Dmax { get; }

    internal double ClipR(double r)
    {
        if (Rmin is double lo)
        {
            r = Math.Max(r, lo);
        }

        if (Rmax is double hi)
        {
            r = Math.Min(r, hi);
        }

        return r;
    }

    internal double ClipD(double d) => Dmax is double m ? Math.Clamp(d, -m, m) : d;
}
