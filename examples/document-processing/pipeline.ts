import { Counter, type Registry } from 'prom-client'

/** What each tenant's extraction prompt asks the LLM for: field name and the label it looks for. */
export const EXTRACTION_FIELDS: Record<string, Record<string, string>> = {
  acme: { invoiceNumber: 'Invoice number', total: 'Total' },
  globex: { patientName: 'Patient', dateOfService: 'Date of service' }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * Stands in for the OCR engine and the LLM: slow, and counted in the app's registry
 * (`document_pipeline_runs_total{stage}`), so /metrics shows how often each really ran.
 */
export class DocumentPipeline {
  readonly #runs: Counter<'stage'>

  constructor (registry: Registry, private readonly delays = { ocrMs: 200, extractionMs: 300 }) {
    this.#runs = new Counter({ name: 'document_pipeline_runs_total', help: 'OCR and LLM extraction runs', labelNames: ['stage'], registers: [registry] })
  }

  async ocr (document: Buffer): Promise<{ pages: number, text: string }> {
    this.#runs.inc({ stage: 'ocr' })
    await sleep(this.delays.ocrMs)
    // The fake "scan" is text: drop the PDF header and anything unprintable; form feeds split pages.
    const text = document.toString('latin1').replace(/^%PDF-[\d.]+\n/, '').replace(/[^\x20-\x7e\n\f]/g, '')
    return { pages: text.split('\f').length, text: text.replace(/\f/g, '\n') }
  }

  async extract (text: string, tenant: string): Promise<Record<string, string | null>> {
    this.#runs.inc({ stage: 'extraction' })
    await sleep(this.delays.extractionMs)
    const fields: Record<string, string | null> = {}
    for (const [field, label] of Object.entries(EXTRACTION_FIELDS[tenant])) {
      fields[field] = new RegExp(`^${label}:\\s*(.+)$`, 'm').exec(text)?.[1] ?? null
    }
    return fields
  }
}
