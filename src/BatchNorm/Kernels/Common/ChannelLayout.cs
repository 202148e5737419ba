using System;

namespace BatchNorm.Kernels;

/// <summary>
/// Any dense input seen as <c>[Outer, Channels, Inner]</c>: <c>Outer</c> is the product of the dimensions before the
/// channel axis, <c>Inner</c> the product of those after it. <c>Inner == 1</c> is the channels-last layout
/// (<c>[rows, C]</c>); otherwise each (outer, channel) pair owns one contiguous run of <c>Inner</c> elements.
/// </summary>
internal readonly record struct ChannelLayout(int Outer, int Channels, int Inner)
{
    public int Length => Outer * Channels * Inner;

    /// <summary>Elements reduced per channel.</summary>
    public int CountPerChannel => Outer * Inner;

    public bool IsChannelsLast => Inner == 1;

    public static ChannelLayout FromShape(ReadOnlySpan<int> dimensions, int axis)
    {
        int outer = 1;
        for (int i = 0; i < axis; i++)
        {
            outer *= dimensions[i];
        }

        int inner = 1;
        for (int i = axis + 1; i < dimensions.Length; i++)
        {
            inner *= dimensions[i];
        }

        return new ChannelLayout(outer, dimensions[axis], inner).Canonical();
    }

    /// <summary>
    /// One channel means one contiguous run whatever the axis, so it is reduced as <c>[1, 1, Length]</c>,
    /// which vectorises along the data rather than across a single channel.
    /// </summary>
    public ChannelLayout Canonical() =>
        Channels == 1 && Outer != 1 ? new ChannelLayout(1, 1, Outer * Inner) : this;
}
