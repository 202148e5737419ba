using System;
using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BatchNorm.Kernels;
using BatchNorm.Tensors;

namespace BatchNorm;

/// <content>The backward pass: gradients of a loss with respect to the input, gamma and beta.</content>
public partial class BatchNormalization<T>
{
    /// <summary>The most channels whose per-channel arrays the backward keeps on the stack; more are rented.</summary>
    private const int StackChannels = 128;

    private ForwardContext? _context;
    private NdArray<T>? _lastInput;
    private ForwardMode _lastMode;

    private enum ForwardMode
    {
        None,
        Batch,
        Moving,
    }

    /// <summary>
    /// Gradients for the most recent <see cref="Call(NdArray{T}, bool, NdArray{bool}?)"/> of an <see cref="NdArray{T}"/>,
    /// given <paramref name="outputGradient"/> = dL/dy of the same shape.
    /// </summary>
    /// <remarks>
    /// <para>
    /// After a training-mode call (batch statistics), with <c>xhat = (x - mean) / sqrt(var + eps)</c> and n the count:
    /// <c>dbeta = sum(dy)</c>, <c>dgamma = sum(dy * xhat)</c>,
    /// <c>dx = gamma / sqrt(var + eps) * (dy - dbeta / n - xhat * dgamma / n)</c>. With renorm, gamma is <c>r * gamma</c>,
    /// <c>dgamma = sum(dy * (r * xhat + d))</c> and r, d are constants (Keras' stop_gradient). With a mask, the sums still run
    /// over every position (every output depends on the statistics) but only unmasked inputs receive the statistics terms,
    /// and n is Keras' <c>count + 1e-7</c>.
    /// After an inference-mode call (or with <see cref="Trainable"/> false) the layer is affine per channel:
    /// <c>dx = dy * gamma / sqrt(moving_variance + eps)</c>, <c>dgamma = sum(dy * xhat)</c> with the moving statistics,
    /// <c>dbeta = sum(dy)</c>; this reads the current gamma and moving statistics.
    /// </para>
    /// <para>
    /// Regularization: when <paramref name="includeRegularization"/> is true (the default, as Keras' training loop adds
    /// <c>layer.losses</c> to the loss), the gradients of <see cref="GammaRegularizer"/> and <see cref="BetaRegularizer"/>
    /// are ADDED to dgamma and dbeta, and <see cref="BatchNormalizationGradients{T}.IncludesRegularization"/> says so; add
    /// <see cref="RegularizationLoss"/> to your loss value to match. Pass false to get only the data term.
    /// </para>
    /// <para>The input is read again from the array passed to Call, which must not have changed since.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="outputGradient"/> is null.</exception>
    /// <exception cref="InvalidOperationException">There was no preceding call, it was in place (its input is gone), or
    /// it took spans or tensor spans (use the overload that takes the input).</exception>
    /// <exception cref="ArgumentException"><paramref name="outputGradient"/>'s shape is not the input's.</exception>
    public BatchNormalizationGradients<T> Backward(NdArray<T> outputGradient, bool includeRegularization = true)
    {
        ArgumentNullException.ThrowIfNull(outputGradient);
        NdArray<T> input = RequireSavedInput();
        var inputGradient = new NdArray<T>(input.Shape);
        NdArray<T>? gammaGradient = Scale ? new NdArray<T>(new NdShape(Channels)) : null;
        NdArray<T>? betaGradient = Center ? new NdArray<T>(new NdShape(Channels)) : null;
        BackwardCore(
            input.ReadOnlySpan, input.Shape.Dimensions, outputGradient.ReadOnlySpan, outputGradient.Shape.Dimensions, inputGradient.Span,
            gammaGradient is null ? default : gammaGradient.Span, betaGradient is null ? default : betaGradient.Span, includeRegularization);
        return new BatchNormalizationGradients<T>(inputGradient, gammaGradient, betaGradient, includeRegularization);
    }

    /// <summary>
    /// The backward pass into caller buffers, allocating nothing; reads the input of the last <see cref="NdArray{T}"/> call.
    /// <paramref name="inputGradient"/> may be <paramref name="outputGradient"/> itself (in place). See
    /// <see cref="Backward(NdArray{T}, bool)"/> for the maths and the regularization rule.
    /// </summary>
    /// <param name="outputGradient">dL/dy, the input's length.</param>
    /// <param name="inputGradient">Receives dL/dx, the input's length.</param>
    /// <param name="gammaGradient">Receives dL/dgamma (C elements), or empty when <see cref="Scale"/> is false.</param>
    /// <param name="betaGradient">Receives dL/dbeta (C elements), or empty when <see cref="Center"/> is false.</param>
    /// <param name="includeRegularization">Add the regularizers' gradients to dgamma and dbeta.</param>
    /// <exception cref="InvalidOperationException">See <see cref="Backward(NdArray{T}, bool)"/>.</exception>
    /// <exception cref="ArgumentException">A length is wrong or the buffers partially overlap.</exception>
    public void Backward(ReadOnlySpan<T> outputGradient, Span<T> inputGradient, Span<T> gammaGradient, Span<T> betaGradient, bool includeRegularization = true)
    {
        NdArray<T> input = RequireSavedInput();
        BackwardCore(input.ReadOnlySpan, input.Shape.Dimensions, outputGradient, input.Shape.Dimensions, inputGradient, gammaGradient, betaGradient, includeRegularization);
    }

    /// <summary>
    /// The backward pass for the most recent call when that call took spans or tensor spans: pass the same input again.
    /// Allocates nothing; <paramref name="inputGradient"/> may be <paramref name="outputGradient"/>. See
    /// <see cref="Backward(NdArray{T}, bool)"/> for the maths and the regularization rule.
    /// </summary>
    /// <exception cref="InvalidOperationException">There was no preceding call.</exception>
    /// <exception cref="ArgumentException">The shape is not the last call's, a length is wrong, or buffers partially overlap.</exception>
    public void Backward(
        ReadOnlySpan<T> inputs, NdShape shape, ReadOnlySpan<T> outputGradient, Span<T> inputGradient, Span<T> gammaGradient, Span<T> betaGradient,
        bool includeRegularization = true)
    {
        if (inputs.Length != shape.Length)
        {
            ThrowHelper.ThrowArgument(nameof(inputs), $"Expected {shape.Length} elements for shape {shape}, got {inputs.Length}.");
        }

        BackwardCore(inputs, shape.Dimensions, outputGradient, shape.Dimensions, inputGradient, gammaGradient, betaGradient, includeRegularization);
    }

    private NdArray<T> RequireSavedInput()
    {
        RequireForward();
        if (_lastInput is null)
        {
            ThrowHelper.ThrowInvalidOperation(
                "The last call's input is not available: it was in place (the input was overwritten) or took spans/tensor spans. " +
                "Call out of place with NdArray inputs, or use Backward(inputs, shape, outputGradient, ...).");
        }

        return _lastInput;
    }

    private void RequireForward()
    {
        if (_lastMode == ForwardMode.None)
        {
            ThrowHelper.ThrowInvalidOperation("Backward needs a preceding Call: there is no forward pass to differentiate.");
        }
    }

    /// <summary>
    /// The backward pass of a small batch after an unmasked training call: the sums, the coefficients and dx in one routine
    /// (<see cref="BatchNormKernels.SmallBackward{T}"/>, the same bits as the separate kernels), then dgamma and dbeta as
    /// <see cref="FinishParameterGradients"/> makes them. Its own method with its own three per-channel arrays (sums of
    /// dy (x - centre), dgamma and dbeta in double), so that the checks in BackwardCore are all such a call runs of it:
    /// none of the general path's buffers, alignment or slicing.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SmallBackward(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, VectorWidth width,
        Span<T> gammaGradient, Span<T> betaGradient, bool includeRegularization)
    {
        ForwardContext context = _context!;
        int channels = layout.Channels;
        double[]? rented = null;
        Span<double> buffer = channels <= StackChannels ? stackalloc double[3 * StackChannels] : (rented = ArrayPool<double>.Shared.Rent(3 * channels));
        Span<double> gammaGrad = buffer.Slice(channels, channels);
        Span<double> betaGrad = buffer.Slice(2 * channels, channels);
        BatchNormKernels.SmallBackward(
            x, dy, dx, layout, context.Center, context.Mean, context.InverseStddev, context.EffectiveGamma, context.R, context.D,
            1.0 / context.Denominator, buffer[..channels], gammaGrad, betaGrad, width);
        FinishParameterGradients(gammaGrad, betaGrad, gammaGradient, betaGradient, includeRegularization);
        if (rented is not null)
        {
            ArrayPool<double>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// dgamma and dbeta from their double sums: the regularizers' gradients added when <paramref name="includeRegularization"/>,
    /// then each rounded to T into the caller's span (present only with scale or center).
    /// </summary>
    private void FinishParameterGradients(
        Span<double> gammaGrad, Span<double> betaGrad, Span<T> gammaGradient, Span<T> betaGradient, bool includeRegularization)
    {
        if (includeRegularization)
        {
            if (GammaRegularizer is not null && _gamma is not null)
            {
                GammaRegularizer.AddGradient<T>(_gamma.ReadOnlySpan, gammaGrad);
            }

            if (BetaRegularizer is not null && _beta is not null)
            {
                BetaRegularizer.AddGradient<T>(_beta.ReadOnlySpan, betaGrad);
            }
        }

        if (Scale)
        {
            ChannelVector.Narrow(gammaGrad, gammaGradient);
        }

        if (Center)
        {
            ChannelVector.Narrow(betaGrad, betaGradient);
        }
    }

    private void BackwardCore(
        ReadOnlySpan<T> x, ReadOnlySpan<int> shape, ReadOnlySpan<T> dy, ReadOnlySpan<int> gradientShape, Span<T> dx,
        Span<T> gammaGradient, Span<T> betaGradient, bool includeRegularization)
    {
        RequireForward();
        ForwardContext context = _context!;
        bool batch = _lastMode == ForwardMode.Batch;
        // The checks, without the messages: those are built out of line (ThrowBadGradientShape, ThrowBadLength,
        // ThrowBadParameterGradient), so that this method, called on every backward, keeps a small frame.
        if (!shape.SequenceEqual(gradientShape) || (batch && !shape.SequenceEqual(context.Shape)))
        {
            ThrowBadGradientShape(shape, gradientShape, batch ? context.Shape : null);
        }

        int axis = ResolveAxis(shape, "inputs");
        ChannelLayout layout = ChannelLayout.FromShape(shape, axis);
        int channels = layout.Channels;
        if (dy.Length != layout.Length)
        {
            ThrowBadLength("outputGradient", layout.Length, dy.Length);
        }

        if (dx.Length != layout.Length)
        {
            ThrowBadLength("inputGradient", layout.Length, dx.Length);
        }

        if (dy.Overlaps(dx, out int offset) && offset != 0)
        {
            ThrowHelper.ThrowArgument("inputGradient", "Expected the input gradient to be the output gradient itself (in place) or not to overlap it.");
        }

        if (gammaGradient.Length != (Scale ? channels : 0))
        {
            ThrowBadParameterGradient("gammaGradient", gammaGradient.Length, Scale, channels, "scale");
        }

        if (betaGradient.Length != (Center ? channels : 0))
        {
            ThrowBadParameterGradient("betaGradient", betaGradient.Length, Center, channels, "center");
        }

        VectorWidth width = BatchNormKernels.BackwardWidth<T>(VectorWidths.Best, layout);
        if (batch && context.MaskWeights.IsEmpty && BatchNormKernels.IsSmallBackward<T>(layout, width))
        {
            SmallBackward(x, dy, dx, layout, width, gammaGradient, betaGradient, includeRegularization);
        }
        else
        {
            GeneralBackward(x, dy, dx, layout, batch, gammaGradient, betaGradient, includeRegularization);
        }
    }

    /// <summary>
    /// The backward pass of every call <see cref="SmallBackward"/> does not take (checked by BackwardCore): the gradient
    /// sums, the per-channel coefficients, then dx, each its own kernel, each at its own width
    /// (<see cref="BatchNormKernels.GradientSumsWidth{T}"/>; dx at the best).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void GeneralBackward(
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, ChannelLayout layout, bool batch,
        Span<T> gammaGradient, Span<T> betaGradient, bool includeRegularization)
    {
        ForwardContext context = _context!;
        int channels = layout.Channels;

        // Per-channel coefficients, all in double: 7 arrays of C; rented so that steady-state calls allocate nothing.
        double[]? rentedBuffer = null;
        T[]? rentedCoefficients = null;
        Span<double> buffer = channels <= StackChannels ? stackalloc double[7 * channels] : (rentedBuffer = ArrayPool<double>.Shared.Rent(7 * channels));
        // Each of the four arrays starts on a line, as the inference fold's do, whatever C is. Wider rows load them
        // beside every data vector of dx, so there they are spread a quarter page apart (CacheLine.SpreadAcrossPage, not a
        // whole number of pages apart, which put each channel's four at one page offset) from an eighth of a page above
        // dx's offset (CacheLine.PlaceReadBeside): none then lies within an eighth of a page of dx's stores.
        bool paged = channels > StackChannels;
        int coefficientLength = CacheLine.ReadBesideLength<T>(4, channels, paged);
        Span<T> coefficientBuffer = paged ? (rentedCoefficients = ArrayPool<T>.Shared.Rent(coefficientLength)) : stackalloc T[coefficientLength];
        Span<int> starts = stackalloc int[4];
        CacheLine.PlaceReadBeside(coefficientBuffer[..coefficientLength], channels, paged, CacheLine.PageOffset(in MemoryMarshal.GetReference(dx)), starts);

        try
        {
            Span<double> sumDy = buffer.Slice(3 * channels, channels);
            Span<double> sumDyCentered = buffer.Slice(4 * channels, channels);
            Span<double> gammaGrad = buffer.Slice(5 * channels, channels);
            Span<double> betaGrad = buffer.Slice(6 * channels, channels);
            Span<T> center = coefficientBuffer.Slice(starts[0], channels);
            Span<T> a = coefficientBuffer.Slice(starts[1], channels);
            Span<T> p = coefficientBuffer.Slice(starts[2], channels);
            Span<T> q = coefficientBuffer.Slice(starts[3], channels);

            // The statistics and the gamma the forward applied: the batch's (kept by the training call, with
            // 1 / sqrt(var + eps) and the rounded mean), or the moving statistics and gamma themselves.
            scoped ReadOnlySpan<double> mean, effectiveGamma, inverseStddev;
            if (batch)
            {
                mean = context.Mean;
                effectiveGamma = context.EffectiveGamma;
                inverseStddev = context.InverseStddev;
            }
            else
            {
                Span<double> movingMean = buffer.Slice(0, channels);
                Span<double> inverse = buffer.Slice(channels, channels);
                Span<double> gamma = buffer.Slice(2 * channels, channels);
                ChannelVector.Widen<T>(_movingMean!.ReadOnlySpan, movingMean);
                ChannelVector.Widen<T>(_movingVariance!.ReadOnlySpan, inverse);
                if (_gamma is null)
                {
                    gamma.Fill(1.0);
                }
                else
                {
                    ChannelVector.Widen<T>(_gamma.ReadOnlySpan, gamma);
                }

                ChannelVector.Narrow<T>(movingMean, center);
                BatchNormKernels.InverseStddev(inverse, Epsilon, inverse);
                mean = movingMean;
                effectiveGamma = gamma;
                inverseStddev = inverse;
            }

            double inverseDenominator = 1.0 / context.Denominator;
            bool masked = batch && !context.MaskWeights.IsEmpty;
            if (batch)
            {
                context.Center.AsSpan().CopyTo(center);
            }

            if (layout.Length != 0)
            {
                BatchNormKernels.GradientSums(x, dy, layout, center, sumDy, sumDyCentered, BatchNormKernels.GradientSumsWidth<T>(VectorWidths.Best, layout), MaxDegreeOfParallelism);
            }
            else
            {
                sumDy.Clear();
                sumDyCentered.Clear();
            }

            double maskShift = masked ? BatchNormKernels.MaskCountEpsilon * inverseDenominator : 0.0;
            BatchNormKernels.ChannelGradientCoefficients(
                mean, inverseStddev, effectiveGamma, center, sumDy, sumDyCentered,
                batch ? context.R : default, batch ? context.D : default, inverseDenominator, maskShift,
                gammaGrad, betaGrad, a, p, q);

            if (layout.Length != 0)
            {
                BatchNormKernels.InputGradient(
                    x, dy, dx, layout, batch ? context.MaskWeights : default, center, a, p, q, VectorWidths.Best, MaxDegreeOfParallelism);
            }

            FinishParameterGradients(gammaGrad, betaGrad, gammaGradient, betaGradient, includeRegularization);
        }
        finally
        {
            if (rentedBuffer is not null)
            {
                ArrayPool<double>.Shared.Return(rentedBuffer);
            }

            if (rentedCoefficients is not null)
            {
                ArrayPool<T>.Shared.Return(rentedCoefficients);
            }
        }
    }

    /// <summary>The exception for an output gradient whose shape is not the input's (or, after a training call, not that call's).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadGradientShape(ReadOnlySpan<int> shape, ReadOnlySpan<int> gradientShape, int[]? trainingShape) =>
        ThrowHelper.ThrowArgument("outputGradient",
            $"Expected the shape of the last call's input {NdShape.Format(trainingShape ?? shape)}, got {NdShape.Format(gradientShape)}" +
            (trainingShape is not null ? $" for an input of shape {NdShape.Format(shape)}." : "."));

    /// <summary>The exception for a gradient buffer of the wrong length.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadLength(string paramName, int expected, int actual) =>
        ThrowHelper.ThrowArgument(paramName, $"Expected {expected} elements, got {actual}.");

    /// <summary>
    /// The exception for a dgamma or dbeta span of the wrong length: C elements when the weight exists, empty when
    /// <paramref name="flag"/> is false.
    /// </summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadParameterGradient(string paramName, int length, bool present, int channels, string flag)
    {
        if (present)
        {
            ThrowHelper.ThrowArgument(paramName, $"Expected {channels} elements (one per channel), got {length}.");
        }

        ThrowHelper.ThrowArgument(paramName, $"Expected an empty span: the layer has {flag}=false, so there is no such weight.");
    }

    /// <summary>What a training-mode forward pass keeps for the backward pass: per-channel statistics and coefficients, never a copy of the input.</summary>
    private sealed class ForwardContext
    {
        private T[] _maskWeights = [];
        private int _maskLength;

        public ForwardContext(int channels, int rank)
        {
            Mean = new double[channels];
            Variance = new double[channels];
            R = new double[channels];
            R.AsSpan().Fill(1.0); // no correction (D = 0) unless renorm overwrites them
            D = new double[channels];
            EffectiveGamma = new double[channels];
            EffectiveBeta = new double[channels];
            InverseStddev = new double[channels];
            Center = new T[channels];
            Shape = new int[rank];
        }

        public double[] Mean { get; }

        public double[] Variance { get; }

        public double[] R { get; }

        public double[] D { get; }

        public double[] EffectiveGamma { get; }

        public double[] EffectiveBeta { get; }

        /// <summary><c>1 / sqrt(variance + epsilon)</c> of the batch variance, as the backward pass needs it.</summary>
        public double[] InverseStddev { get; }

        /// <summary>The batch mean rounded to T: the point the backward pass centres x on, as the forward did.</summary>
        public T[] Center { get; }

        public int[] Shape { get; }

        /// <summary>n, or Keras' count + 1e-7 with a mask.</summary>
        public double Denominator { get; set; }

        public ReadOnlySpan<T> MaskWeights => _maskWeights.AsSpan(0, _maskLength);

        public void Begin(ReadOnlySpan<int> shape)
        {
            shape.CopyTo(Shape);
            _maskLength = 0;
        }

        /// <summary>Copies a boolean mask into 0/1 weights in the kernels' [Outer, Inner] order (the mask's own row-major order).</summary>
        public ReadOnlySpan<T> SetMask(NdArray<bool>? mask, ChannelLayout layout)
        {
            if (mask is null)
            {
                _maskLength = 0;
                return default;
            }

            int n = layout.Outer * layout.Inner;
            if (_maskWeights.Length < n)
            {
                _maskWeights = new T[n];
            }

            ReadOnlySpan<bool> source = mask.ReadOnlySpan;
            for (int i = 0; i < n; i++)
            {
                _maskWeights[i] = source[i] ? T.One : T.Zero;
            }

            _maskLength = n;
            return MaskWeights;
        }
    }
}

/// <summary>The result of <see cref="BatchNormalization{T}.Backward(NdArray{T}, bool)"/>.</summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class BatchNormalizationGradients<T>
    where T : unmanaged
{
    internal BatchNormalizationGradients(NdArray<T> inputGradient, NdArray<T>? gammaGradient, NdArray<T>? betaGradient, bool includesRegularization)
    {
        InputGradient = inputGradient;
        GammaGradient = gammaGradient;
        BetaGradient = betaGradient;
        IncludesRegularization = includesRegularization;
    }

    /// <summary>dL/dx, the input's shape.</summary>
    public NdArray<T> InputGradient { get; }

    /// <summary>dL/dgamma, shape (C,); null when the layer has scale=false.</summary>
    public NdArray<T>? GammaGradient { get; }

    /// <summary>dL/dbeta, shape (C,); null when the layer has center=false.</summary>
    public NdArray<T>? BetaGradient { get; }

    /// <summary>Whether the regularizers' gradients were added to <see cref="GammaGradient"/> and <see cref="BetaGradient"/>.</summary>
    public bool IncludesRegularization { get; }
}
