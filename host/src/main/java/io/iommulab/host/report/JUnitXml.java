package io.iommulab.host.report;

import io.iommulab.config.scenario.Units;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.Violation;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;
import javax.xml.stream.XMLOutputFactory;
import javax.xml.stream.XMLStreamException;
import javax.xml.stream.XMLStreamWriter;

/**
 * {@code junit.xml}: the run's verdict for a CI server, in the JUnit XML format every CI reads.
 * One {@code testsuite} named {@code iommulab.<scenario>}, with the seed among its properties;
 * one {@code testcase} per assertion check (class {@code iommulab.<scenario>.assertions}) and per
 * oracle (class {@code iommulab.<scenario>.oracles}). A failed check has a {@code failure} whose
 * message carries the observed value; a violated oracle's failure lists its first violations.
 */
public final class JUnitXml {
  /** The file name in the output directory. */
  public static final String FILE = "junit.xml";

  private JUnitXml() {}

  public static Path write(RunReport report, Path dir) throws IOException {
    Path file = dir.resolve(FILE);
    ResultFiles.writeAtomically(file, render(report).getBytes(StandardCharsets.UTF_8));
    return file;
  }

  public static String render(RunReport report) {
    String suite = "iommulab." + report.scenario().name();
    double seconds = report.data().endNanos() / 1e9;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      XMLStreamWriter x = XMLOutputFactory.newFactory().createXMLStreamWriter(out, "UTF-8");
      x.writeStartDocument("UTF-8", "1.0");
      x.writeCharacters("\n");
      x.writeStartElement("testsuite");
      x.writeAttribute("name", suite);
      x.writeAttribute("tests", Integer.toString(report.assertions().size() + report.oracles().size()));
      x.writeAttribute("failures", Long.toString(report.failedAssertions() + report.failedOracles()));
      x.writeAttribute("errors", report.status() == RunReport.Status.ERROR ? "1" : "0");
      x.writeAttribute("skipped", "0");
      x.writeAttribute("time", String.format(Locale.ROOT, "%.3f", seconds));
      x.writeAttribute("timestamp", report.startedAt().toString());
      x.writeCharacters("\n  ");
      x.writeStartElement("properties");
      property(x, "seed", Long.toString(report.scenario().seed()));
      property(x, "scenario", report.scenario().name());
      property(x, "engine", report.engine());
      property(x, "status", report.status().word());
      property(x, "completed", Boolean.toString(report.completed()));
      x.writeCharacters("\n  ");
      x.writeEndElement();
      for (AssertionResult a : report.assertions()) {
        testcase(x, suite + ".assertions", a.check());
        if (!a.passed()) {
          x.writeCharacters("\n    ");
          x.writeStartElement("failure");
          x.writeAttribute("type", "AssertionFailed");
          x.writeAttribute("message", a.message());
          x.writeCharacters(a.assertion() + "\nobserved: " + a.observedText() + "\nseed: " + report.scenario().seed());
          x.writeEndElement();
          x.writeCharacters("\n  ");
        }
        x.writeEndElement();
      }
      for (OracleResult o : report.oracles()) {
        testcase(x, suite + ".oracles", o.oracle() + ": " + o.kind().rule());
        if (!o.passed()) {
          x.writeCharacters("\n    ");
          x.writeStartElement("failure");
          x.writeAttribute("type", o.judged() ? "InvariantViolated" : "NotJudged");
          x.writeAttribute("message", o.judged()
              ? o.violations() + " violations in " + o.checks() + " checks (seed " + report.scenario().seed() + ")"
              : "not judged: " + String.join("; ", o.notes()));
          StringBuilder text = new StringBuilder();
          for (Violation v : o.recorded()) {
            text.append(v.summary()).append(" (seed ").append(v.seed()).append(", at ")
                .append(Units.nanos(v.detectedAtNanos())).append(")\n");
            v.events().forEach(e -> text.append("  #").append(e.seq()).append(' ').append(e.what()).append('\n'));
          }
          x.writeCharacters(text.toString());
          x.writeEndElement();
          x.writeCharacters("\n  ");
        }
        x.writeEndElement();
      }
      x.writeCharacters("\n");
      x.writeEndElement();
      x.writeCharacters("\n");
      x.writeEndDocument();
      x.close();
    } catch (XMLStreamException e) {
      throw new IllegalStateException("JUnit XML rendering failed", e);
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  private static void testcase(XMLStreamWriter x, String className, String name) throws XMLStreamException {
    x.writeCharacters("\n  ");
    x.writeStartElement("testcase");
    x.writeAttribute("classname", className);
    x.writeAttribute("name", name);
    x.writeAttribute("time", "0");
  }

  private static void property(XMLStreamWriter x, String name, String value) throws XMLStreamException {
    x.writeCharacters("\n    ");
    x.writeEmptyElement("property");
    x.writeAttribute("name", name);
    x.writeAttribute("value", value);
  }
}
